"""Post-search selection: the non-dominated set and its highest trade-off points."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymoo.core.decision_making import NeighborFinder
from pymoo.mcdm.high_tradeoff import HighTradeoffPoints

from nasx.hypervolume import non_dominated


@dataclass(frozen=True)
class Selection:
    """One chosen architecture: its folder name, archive record and why it was chosen."""

    name: str
    record: dict[str, Any]
    reasons: tuple[str, ...]


def tradeoff_scores(F: np.ndarray) -> np.ndarray:
    """NSGANetV2's trade-off mu of every point of a front (larger = sharper knee).

    pymoo's `HighTradeoffPoints` computes the same quantity but only returns the upper-tail
    outliers; NSGANetV2's ``post_search -n`` needs the full ranking, so the formula is
    repeated here on pymoo's own neighbour search, on the front normalised to [0, 1].
    """
    n = len(F)
    if n < 3:
        return np.zeros(n)
    span = F.max(0) - F.min(0)
    Fn = (F - F.min(0)) / np.where(span > 0, span, 1.0)
    finder = NeighborFinder(
        Fn, epsilon=HighTradeoffPoints().epsilon, n_min_neigbors="auto", consider_2d=False
    )
    mu = np.full(n, -np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(n):
            diff = Fn[finder.find(i)] - Fn[i]
            sacrifice = np.maximum(0, diff).sum(axis=1)
            gain = np.maximum(0, -diff).sum(axis=1)
            mu[i] = np.nanmin(sacrifice / gain)
    return np.nan_to_num(mu, nan=-np.inf, posinf=np.finfo(float).max)


def select_architectures(records: list[dict[str, Any]], n_tradeoffs: int) -> list[Selection]:
    """The non-dominated records (most accurate first), marking the ``n_tradeoffs`` best knees.

    The first point (best first objective) is always included, as in NSGANetV2.
    """
    ok = [r for r in records if not r.get("failed")]
    if not ok:
        return []
    F = np.array([r["F"] for r in ok])
    front = non_dominated(F)
    front = front[np.lexsort(F[front].T[::-1])]
    knees: set[int] = set()
    if F.shape[1] > 1 and n_tradeoffs > 0:
        mu = tradeoff_scores(F[front])
        knees = {
            int(front[i])
            for i in np.argsort(-mu, kind="stable")[:n_tradeoffs]
            if np.isfinite(mu[i])
        }
    out = []
    for rank, i in enumerate(front):
        reasons = ["non_dominated"]
        if rank == 0:
            reasons.append("best_first_objective")
        if int(i) in knees:
            reasons.append("high_tradeoff")
        out.append(Selection(f"front_{rank:02d}", ok[int(i)], tuple(reasons)))
    return out
