"""Feasibility of the costs' bounds: fail before a search that no architecture can satisfy."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nasx.errors import NasxError
from nasx.objective.base import Objective
from nasx.search_space.base import Architecture, SearchSpace


def _round_out(value: float, up: bool, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant digits, away from the infeasible side."""
    if value == 0 or not math.isfinite(value):
        return value
    scale = 10.0 ** (math.floor(math.log10(abs(value))) - digits + 1)
    return (math.ceil if up else math.floor)(value / scale) * scale


def check_feasible(
    space: SearchSpace,
    costs: Sequence[Objective],
    n_samples: int = 64,
    seed: int = 0,
) -> float:
    """The fraction of architectures meeting every bound; raise when none is found.

    Every bounded cost is first `Objective.check`-ed. When the space is enumerable and every
    bounded cost is `Objective.cheap` (a table lookup such as a latency column), the whole
    space is scanned and the fraction is exact. Otherwise the bounded costs are computed on
    the space's `SearchSpace.extremes` plus ``n_samples`` architectures drawn with ``seed``,
    and the fraction is that of the random sample (of the extremes when ``n_samples`` is 0).
    Values are cached by the costs, so the search reuses them. Without any bound it returns
    1.0 and computes nothing.

    Raises:
        NasxError: no checked architecture meets all bounds jointly. The message names each
            bound with the best value found for it, and the relaxation that makes the
            closest architecture feasible ("raise objective.costs.N.upper to at least X").
    """
    # a measured cost (avg_macs) has no value before an evaluation: its bound is the search's
    bounded = [(i, c) for i, c in enumerate(costs) if c.has_bound and not c.measured]
    if not bounded:
        return 1.0
    for _, cost in bounded:
        cost.check(space)
    archs = space.enumerate() if all(c.cheap for _, c in bounded) else None
    if archs is not None:
        how = f"scanned all {len(archs)} architectures of the space"
        counted = list(range(len(archs)))
    else:
        rng = np.random.default_rng(seed)
        extremes = space.extremes()
        archs = extremes + [space.sample(rng) for _ in range(n_samples)]
        how = f"checked {len(extremes)} extreme and {n_samples} sampled architectures"
        counted = list(range(len(extremes), len(archs))) if n_samples else list(range(len(archs)))
    values = np.array([[c(a, space) for _, c in bounded] for a in archs], dtype=float)
    viol = np.array(
        [[c.violation(v) for (_, c), v in zip(bounded, row, strict=True)] for row in values]
    )
    ok = (viol == 0).all(axis=1)
    if ok.any():
        return float(ok[counted].mean())
    raise NasxError(_infeasible_message(space, bounded, archs, values, viol, how))


def _infeasible_message(
    space: SearchSpace,
    bounded: list[tuple[int, Objective]],
    archs: list[Architecture],
    values: np.ndarray,
    viol: np.ndarray,
    how: str,
) -> str:
    parts = []
    for col, (i, cost) in enumerate(bounded):
        best = values[int(np.argmin(viol[:, col])), col]
        parts.append(f"objective.costs.{i} ({cost.bound_text()}): best {best:.6g}")
    # the closest architecture: least violation relative to each bound's size
    scale = np.array(
        [max(abs(c.upper if c.upper is not None else c.lower or 0.0), 1e-12) for _, c in bounded]
    )
    k = int(np.argmin((viol / scale).sum(axis=1)))
    fixes = []
    for col, (i, cost) in enumerate(bounded):
        value = float(values[k, col])
        if cost.upper is not None and value > cost.upper:
            fixes.append(f"raise objective.costs.{i}.upper to at least {_round_out(value, True):g}")
        if cost.lower is not None and value < cost.lower:
            fixes.append(f"lower objective.costs.{i}.lower to at most {_round_out(value, False):g}")
    return (
        f"no architecture meets every bound ({how}): {'; '.join(parts)}. Fix: "
        f"{' and '.join(fixes)} (then {space.to_str(archs[k])} meets every bound), "
        "or drop a bound"
    )
