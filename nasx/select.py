"""Post-search selection as NSGANetV2 and CNAS do it: knees, preferences and lowest costs.

Three modes pick architectures from the non-dominated set of the archive:

- ``tradeoff``: the whole non-dominated set, with the ``n_tradeoffs`` sharpest knees marked
  (NSGANetV2's ``post_search`` without ``--prefer``; CNAS with ``sec_obj``).
- ``prefer``: the ``n`` points closest to a preference such as ``top1#80+flops#150`` by
  pymoo's achievement scalarization (NSGANetV2's ``--prefer``).
- ``lowest``: the ``n`` points with the lowest value of one objective (CNAS's
  ``--prefer <objective>``).

The most accurate point (best first objective) is always part of the selection.

**The first objective as an error.** The ASF measures every objective from a utopian point at
0, so NSGANetV2 ranks top-1 *errors*. In nasx the first ``F`` column is the metric, negated
when it is maximised. `first_objective_errors` turns it into a non-negative error measured
from the metric's ideal score (`first_objective_ideal`):

- maximised metric, scores within [0, 1] (accuracy as a fraction): error = 1 - score = 1 + F;
- maximised metric, scores within [0, 100] (percent, e.g. NAS-Bench-201): error = 100 - score;
- maximised metric with larger scores (unbounded proxies): error = best archive score - score;
- minimised metric: the ``F`` column as it is (shifted by its minimum if that is negative).

The costs (FLOPs, params, latency) are used as they are. A preference value is turned into
the same units: ``<metric>#v`` is a score on the metric's own scale (error = ideal - v),
``top1#v`` an accuracy in percent (error = 100 - v, rescaled to the metric's scale).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymoo.core.decision_making import NeighborFinder
from pymoo.decomposition.asf import ASF
from pymoo.mcdm.high_tradeoff import HighTradeoffPoints

from nasx.errors import NasxError
from nasx.hypervolume import ObjectiveUnits, non_dominated

#: the selection modes (``select.mode``)
MODES = ("tradeoff", "prefer", "lowest")
#: NSGANetV2's preference key for an accuracy in percent
TOP1 = "top1"


@dataclass(frozen=True)
class Selection:
    """One chosen architecture: its folder name, archive record and why it was chosen.

    ``rank`` is its place in the ranking that chose it (knee, ASF or lowest value; ``None``
    for points chosen for another reason); ``info`` holds what it was chosen by (the
    preference and its ASF value, the objective and its value, or the trade-off mu).
    """

    name: str
    record: dict[str, Any]
    reasons: tuple[str, ...]
    rank: int | None = None
    info: Mapping[str, Any] = field(default_factory=dict)


# --- trade-off knees -------------------------------------------------------------------------


def tradeoff_scores(F: np.ndarray, normalize: bool = True) -> np.ndarray:
    """NSGANetV2's trade-off mu of every point of a front (larger = sharper knee).

    pymoo's `HighTradeoffPoints` computes the same quantity but only returns the upper-tail
    outliers; NSGANetV2's ``post_search -n`` needs the full ranking, so the formula is
    repeated here on pymoo's own neighbour search. With ``normalize`` (NSGANetV2) the front is
    scaled to [0, 1] first, so the neighbourhood radius 0.125 is relative; ``False``
    reproduces CNAS HEAD, which comments the normalisation out and so measures the radius in
    raw objective units: pass ``F`` in CNAS's units (top-1 error in %, the costs), which
    `select_architectures` does with its ``units``.
    """
    n = len(F)
    if n < 3:
        return np.zeros(n)
    if normalize:
        span = F.max(0) - F.min(0)
        F = (F - F.min(0)) / np.where(span > 0, span, 1.0)
    finder = NeighborFinder(
        F, epsilon=HighTradeoffPoints().epsilon, n_min_neigbors="auto", consider_2d=False
    )
    mu = np.full(n, -np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(n):
            diff = F[finder.find(i)] - F[i]
            sacrifice = np.maximum(0, diff).sum(axis=1)
            gain = np.maximum(0, -diff).sum(axis=1)
            mu[i] = np.nanmin(sacrifice / gain)
    return np.nan_to_num(mu, nan=-np.inf, posinf=np.finfo(float).max)


# --- the first objective as an error ---------------------------------------------------------


def _maximised(objective_names: Sequence[str]) -> bool:
    """The evaluator names a maximised metric's negated column ``-<metric>``."""
    return bool(objective_names) and objective_names[0].startswith("-")


def first_objective_ideal(F0: np.ndarray, maximised: bool) -> float:
    """The score the first objective's error is measured from (see the module docstring).

    Maximised: 1 if every score is within [0, 1], 100 if within [0, 100], else the best
    score. Minimised: 0, or the lowest value if some are negative.
    """
    scores = -np.asarray(F0, dtype=float) if maximised else np.asarray(F0, dtype=float)
    if len(scores) == 0:
        return 1.0 if maximised else 0.0
    if maximised:
        best = float(scores.max())
        return 1.0 if best <= 1.0 else 100.0 if best <= 100.0 else best
    return min(0.0, float(scores.min()))


def first_objective_errors(
    F: np.ndarray, maximised: bool, ideal: float | None = None
) -> np.ndarray:
    """``F`` with its first column turned into a non-negative error (the costs as they are)."""
    E = np.array(F, dtype=float)
    if len(E) == 0:
        return E
    if ideal is None:
        ideal = first_objective_ideal(E[:, 0], maximised)
    E[:, 0] = ideal + E[:, 0] if maximised else E[:, 0] - ideal
    return E


# --- preferences -----------------------------------------------------------------------------


def objective_keys(objective_names: Sequence[str]) -> dict[str, int]:
    """Names accepted for each objective: metric name, ``F`` column, ``top1``, cost names."""
    keys: dict[str, int] = {}
    if objective_names:
        first = objective_names[0]
        keys[first.lstrip("-")] = 0
        keys[first] = 0
        if _maximised(objective_names):
            keys[TOP1] = 0
    for j, name in enumerate(objective_names[1:], start=1):
        keys.setdefault(name, j)
    return keys


def _preference_error(text: str, problem: str, objective_names: Sequence[str]) -> NasxError:
    keys = ", ".join(objective_keys(objective_names))
    return NasxError(
        f"select.prefer={text!r}: {problem}; expected key#value+key#value with one positive "
        f"number per objective (top1 is an accuracy in %), keys: {keys}"
    )


def parse_preference_values(
    text: str, objective_names: Sequence[str]
) -> dict[int, tuple[str, float]]:
    """Syntax of a preference: ``{objective index: (key, value)}``, every objective once.

    Raises `NasxError` naming the expected form for anything else (no eval, no code).
    """
    keys = objective_keys(objective_names)
    out: dict[int, tuple[str, float]] = {}
    for part in str(text).split("+"):
        key, sep, raw = part.strip().partition("#")
        key, raw = key.strip(), raw.strip()
        if not sep or not key or not raw:
            raise _preference_error(text, f"{part.strip()!r} is not key#value", objective_names)
        if key not in keys:
            raise _preference_error(text, f"unknown key {key!r}", objective_names)
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise _preference_error(
                text, f"{key}#{raw}: the value must be a positive number", objective_names
            )
        j = keys[key]
        if j in out:
            raise _preference_error(
                text, f"{key!r} names {objective_names[j]!r} a second time", objective_names
            )
        out[j] = (key, value)
    missing = [objective_names[j] for j in range(len(objective_names)) if j not in out]
    if missing:
        raise _preference_error(text, f"no value for {', '.join(missing)}", objective_names)
    return out


def parse_preference(
    text: str, objective_names: Sequence[str], ideal: float | None = None
) -> np.ndarray:
    """ASF weights, in the order of ``objective_names``, from ``"top1#80+flops#150"``.

    As NSGANetV2: the string is split on ``+`` into ``key#value`` pairs. The first objective
    is named ``top1`` (an accuracy in percent: weight = error = 100 - v), by the metric's name
    or by its ``F`` column (a score v on the metric's scale: weight = ``|ideal - v|``); the
    other keys name costs, whose values are the weights. ``ideal`` is the metric's ideal score
    (`first_objective_ideal` of the archive); ``None`` takes 100 for a maximised metric
    (NSGANetV2's percent top-1) and 0 for a minimised one. So with ``["-accuracy", "flops"]``
    ``top1#80+flops#150`` gives (20, 150); with ``ideal=1`` (accuracy as a fraction) it gives
    (0.2, 150), and so does ``accuracy#0.8+flops#150``.
    """
    values = parse_preference_values(text, objective_names)
    maximised = _maximised(objective_names)
    if ideal is None:
        ideal = 100.0 if maximised else 0.0
    weights = np.zeros(len(objective_names))
    for j, (key, value) in values.items():
        if j > 0:
            weights[j] = value
            continue
        if key == TOP1:
            if value >= 100 or ideal not in (1.0, 100.0):
                problem = (
                    f"top1#{value:g} must be below 100"
                    if value >= 100
                    else f"top1 needs an accuracy in [0, 1] or [0, 100], and "
                    f"{objective_names[0].lstrip('-')} reaches {ideal:g}: name the metric instead"
                )
                raise _preference_error(text, problem, objective_names)
            weights[0] = (100.0 - value) * ideal / 100.0
        else:
            weights[0] = ideal - value if maximised else value - ideal
            if weights[0] <= 0:
                side = "below" if maximised else "above"
                raise _preference_error(
                    text,
                    f"{key}#{value:g} leaves no error to weigh: give a value {side} the "
                    f"metric's ideal {ideal:g}",
                    objective_names,
                )
    return weights


def asf_values(E: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ASF values (pymoo) with the utopian point at 0: ``max_j(E_j / w_j)``; smaller = closer."""
    E = np.asarray(E, dtype=float)
    if len(E) == 0:
        return np.zeros(0)
    utopian = np.zeros(E.shape[1])
    w = np.asarray(weights, dtype=float)
    return np.asarray(ASF().do(E, w, _type="many_to_one", utopian_point=utopian)).reshape(len(E))


def objective_index(name: str, objective_names: Sequence[str]) -> int:
    """Column of the objective named ``name`` (metric name, ``F`` column or cost name)."""
    keys = {k: j for k, j in objective_keys(objective_names).items() if k != TOP1}
    if name not in keys:
        raise NasxError(
            f"select.objective={name!r} is not an objective of this run: use one of "
            f"{', '.join(keys)}"
        )
    return keys[name]


# --- the selection ---------------------------------------------------------------------------


def filter_exits(records: list[dict[str, Any]], n_exits: int | None) -> list[dict[str, Any]]:
    """Records whose ``objectives`` or ``metric`` hold ``n_exits`` equal to the given value.

    ``None`` keeps everything. Search spaces without early exits record no ``n_exits``, so
    any other value is an error there.
    """
    if n_exits is None:
        return records

    def exits(r: dict[str, Any]) -> Any:
        for part in ("objectives", "metric"):
            if "n_exits" in (r.get(part) or {}):
                return r[part]["n_exits"]
        return None

    found = {exits(r) for r in records} - {None}
    if not found:
        raise NasxError(
            f"select.n_exits={n_exits}: the evaluated architectures have no early exits (the "
            "search space has none): leave select.n_exits=null"
        )
    kept = [r for r in records if exits(r) == n_exits]
    if not kept:
        have = ", ".join(str(v) for v in sorted(found, key=str))
        raise NasxError(f"select.n_exits={n_exits}: no architecture has that many; found {have}")
    return kept


def _front(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of ``F``, most accurate first (ties: lower costs)."""
    front = non_dominated(F)
    return front[np.lexsort(F[front].T[::-1])]


def front_records(
    records: list[dict[str, Any]], n_exits: int | None = None
) -> list[dict[str, Any]]:
    """The non-dominated records among the successful ones (after `filter_exits`), best first."""
    ok = filter_exits([r for r in records if not r.get("failed")], n_exits)
    if not ok:
        return []
    return [ok[int(i)] for i in _front(np.array([r["F"] for r in ok], dtype=float))]


def select_architectures(
    records: list[dict[str, Any]],
    n_tradeoffs: int = 3,
    *,
    mode: str = "tradeoff",
    n: int = 3,
    prefer: str | None = None,
    objective: str | None = None,
    objective_names: Sequence[str] | None = None,
    normalize: bool = True,
    n_exits: int | None = None,
    units: ObjectiveUnits | None = None,
) -> list[Selection]:
    """Choose architectures from the archive ``records`` (failed ones are ignored).

    ``tradeoff``: every non-dominated record (most accurate first, ``front_<k>``), the
    ``n_tradeoffs`` best knees named ``tradeoff_<rank>``. ``prefer``: the ``n`` front points
    with the smallest ASF value for ``prefer`` (``prefer_<rank>``). ``lowest``: the ``n``
    front points with the lowest ``objective`` (default: the second objective, or the first
    if there is none; ``lowest_<objective>_<rank>``). With a single objective, ``prefer`` and
    ``lowest`` rank the whole archive (its front is one point). The most accurate point is
    always included (``best`` when no ranking chose it). ``objective_names`` are the ``F``
    columns (default ``f0, f1, ...``, all minimised). ``units`` (`nasx.evaluator.
    objective_units`) maps ``F`` to the papers' units: the knee radius of ``normalize=False``
    is measured in them (an accuracy fraction as top-1 error in %, as CNAS), and the metric's
    ideal score, when it declares one, replaces `first_objective_ideal`'s guess.
    """
    if mode not in MODES:
        raise NasxError(f"select.mode={mode!r} is not a mode: use one of {', '.join(MODES)}")
    ok = filter_exits([r for r in records if not r.get("failed")], n_exits)
    if not ok:
        return []
    F = np.array([r["F"] for r in ok], dtype=float)
    names = list(objective_names) if objective_names else [f"f{j}" for j in range(F.shape[1])]
    if len(names) != F.shape[1]:
        raise ValueError(f"{len(names)} objective names for {F.shape[1]} objectives")
    front = _front(F)
    if units is None:
        units = ObjectiveUnits.plain(F.shape[1])
    if mode == "tradeoff":
        return _tradeoff(ok, units.to_paper(F), front, n_tradeoffs, normalize)
    pool = front if F.shape[1] > 1 else np.lexsort(F.T[::-1])
    if mode == "prefer":
        if not prefer:
            raise NasxError("select.mode=prefer needs select.prefer=key#value+key#value")
        maximised = _maximised(names)
        ideal = (
            first_objective_ideal(F[:, 0], maximised)
            if math.isnan(units.ideal[0])
            # the metric's declared ideal score (F holds it negated when maximised)
            else (-units.ideal[0] if maximised else units.ideal[0])
        )
        weights = parse_preference(prefer, names, ideal)
        score = asf_values(first_objective_errors(F[pool], maximised, ideal), weights)
        order = pool[np.argsort(score, kind="stable")]
        by_point = dict(zip(pool.tolist(), score.tolist(), strict=True))
        info = {"prefer": prefer, "weights": weights.tolist()}
        label, reason = "prefer", "preference"
        values = {i: {**info, "asf": by_point[i]} for i in by_point}
    else:
        j = objective_index(objective, names) if objective else min(1, F.shape[1] - 1)
        # by F[:, j]; ties keep the front's order (most accurate first)
        order = pool[np.lexsort((np.arange(len(pool)), F[pool, j]))]
        short = names[j].lstrip("-")
        label, reason = f"lowest_{short}", f"lowest_{short}"
        values = {int(i): {"objective": names[j], "value": float(F[i, j])} for i in pool}
    out = []
    for rank, i in enumerate(order[:n]):
        reasons = (reason, "best_first_objective") if i == pool[0] else (reason,)
        out.append(Selection(f"{label}_{rank:02d}", ok[int(i)], reasons, rank, values[int(i)]))
    if pool[0] not in order[:n]:
        best = int(pool[0])
        out.append(Selection("best", ok[best], ("best_first_objective",), None, values[best]))
    return out


def _tradeoff(
    ok: list[dict[str, Any]], F: np.ndarray, front: np.ndarray, n_tradeoffs: int, normalize: bool
) -> list[Selection]:
    knees: dict[int, tuple[int, float]] = {}  # archive index -> (knee rank, mu)
    if F.shape[1] > 1 and n_tradeoffs > 0:
        mu = tradeoff_scores(F[front], normalize)
        best = [i for i in np.argsort(-mu, kind="stable")[:n_tradeoffs] if np.isfinite(mu[i])]
        knees = {int(front[i]): (rank, float(mu[i])) for rank, i in enumerate(best)}
    out = []
    for pos, i in enumerate(front):
        reasons = ["non_dominated"]
        name, rank, info = f"front_{pos:02d}", None, {}
        if pos == 0:
            reasons.append("best_first_objective")
        if int(i) in knees:
            reasons.append("high_tradeoff")
            rank, mu_i = knees[int(i)]
            info = {"mu": mu_i}
            if pos > 0:  # the most accurate point keeps front_00
                name = f"tradeoff_{rank:02d}"
        out.append(Selection(name, ok[int(i)], tuple(reasons), rank, info))
    return out
