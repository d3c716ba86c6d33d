"""Hypervolume and non-dominated sets through pymoo."""

from __future__ import annotations

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def reference_point(F: np.ndarray) -> np.ndarray:
    """1% beyond the worst value of each objective (MSuNAS's 1.01 x max, sign-safe)."""
    worst = F.max(axis=0)
    return worst + 0.01 * np.abs(worst) + 1e-12


def hypervolume(F: np.ndarray, ref: np.ndarray) -> float:
    """Volume dominated by ``F`` (minimised) up to ``ref``."""
    if len(F) == 0:
        return 0.0
    return float(HV(ref_point=ref)(F))


def non_dominated(F: np.ndarray) -> np.ndarray:
    """Indices of the first non-dominated front of ``F`` (minimised)."""
    if len(F) == 0:
        return np.zeros(0, dtype=int)
    return np.asarray(NonDominatedSorting().do(F, only_non_dominated_front=True), dtype=int)
