"""Hypervolume as NSGANetV2 and CNAS report it, and non-dominated sets, through pymoo.

NSGANetV2 and CNAS minimise (top-1 error in %, cost), both >= 0, take the reference point
1.01 x the objective-wise worst value of the design of experiments (DOE), and report the
hypervolume divided by the product of the reference point's coordinates: the dominated
fraction of the box [0, ref] (their recorded CIFAR-10 runs show 0.29-0.58).

nasx's ``F`` columns are the metric (negated when maximised) and the costs. `ObjectiveUnits`
maps them to the papers' units, ``u = scale * (F - ideal)``, where ``ideal`` is the best value
a column can take: an accuracy becomes an error (an accuracy fraction becomes an error in %,
as the papers count it), a minimised error or cost stays as it is (its ideal is 0), and a
bounded score (the angle, at most pi) is measured from its bound. A score without a bound (a
zero-cost proxy) has no ideal: its box starts one DOE range beyond the DOE's best value, so
later improvements of up to that range stay inside the box. `HypervolumeBox` then takes the
reference point 1.01 x the DOE's worst value in those units, which lies beyond every DOE
point whatever the metric's direction (in ``F`` units, 1.01 x a negative worst value would
lie inside it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

#: MSuNAS's reference point: this factor times the DOE's worst value (in paper units)
REF_FACTOR = 1.01


def hypervolume(F: np.ndarray, ref: np.ndarray) -> float:
    """Volume dominated by ``F`` (minimised) up to ``ref``; points beyond ``ref`` add nothing."""
    F = np.asarray(F, dtype=float)
    if len(F) == 0:
        return 0.0
    return float(HV(ref_point=np.asarray(ref, dtype=float))(F))


def non_dominated(F: np.ndarray) -> np.ndarray:
    """Indices of the first non-dominated front of ``F`` (minimised)."""
    if len(F) == 0:
        return np.zeros(0, dtype=int)
    return np.asarray(NonDominatedSorting().do(F, only_non_dominated_front=True), dtype=int)


@dataclass(frozen=True)
class ObjectiveUnits:
    """Per ``F`` column: the ideal value in ``F`` units (``nan``: unbounded) and the scale.

    ``to_paper(F) = scale * (F - ideal)`` is non-negative for every value a bounded column can
    take. Built by `nasx.evaluator.Evaluator.units` from the metric's ``ideal`` and
    ``error_scale`` and the costs (ideal 0).
    """

    ideal: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def plain(cls, n_obj: int) -> ObjectiveUnits:
        """Every column unbounded, unscaled (what a caller without a metric can say)."""
        return cls((float("nan"),) * n_obj, (1.0,) * n_obj)

    def resolved_ideal(self, F: np.ndarray) -> np.ndarray:
        """``ideal`` with each unbounded column's set one range beyond the best of ``F``."""
        F = np.asarray(F, dtype=float)
        z = np.array(self.ideal, dtype=float)
        for j in np.flatnonzero(np.isnan(z)):
            col = F[:, j] if len(F) else np.zeros(1)
            span = float(col.max() - col.min())
            z[j] = float(col.min()) - (span if span > 0 else max(abs(float(col.min())), 1.0))
        return z

    def to_paper(self, F: np.ndarray, ideal: np.ndarray | None = None) -> np.ndarray:
        """``scale * (F - ideal)``; unbounded columns use ``ideal`` (default: `resolved_ideal`)."""
        F = np.asarray(F, dtype=float)
        z = self.resolved_ideal(F) if ideal is None else np.asarray(ideal, dtype=float)
        return np.asarray(self.scale, dtype=float) * (F - z)


@dataclass(frozen=True)
class HypervolumeBox:
    """The box [ideal, ref] of one search, fixed from its DOE (MSuNAS step 2).

    Attributes:
        units: how ``F`` maps to paper units.
        ideal: the box's ideal corner in ``F`` units.
        ref: the reference point in ``F`` units (1.01 x the DOE's worst, in paper units).
    """

    units: ObjectiveUnits
    ideal: np.ndarray
    ref: np.ndarray

    @classmethod
    def from_doe(cls, F: np.ndarray, units: ObjectiveUnits) -> HypervolumeBox:
        """The box of a DOE ``F`` (its feasible, successful rows)."""
        F = np.asarray(F, dtype=float)
        ideal = units.resolved_ideal(F)
        worst = units.to_paper(F, ideal).max(axis=0)
        # a column whose DOE sits at its ideal still gets a box of positive width
        ref_u = np.where(worst > 0, REF_FACTOR * worst, 1e-12)
        ref = ideal + ref_u / np.asarray(units.scale, dtype=float)
        return cls(units, ideal, ref)

    @property
    def ref_paper(self) -> np.ndarray:
        """The reference point in paper units (the box is [0, ref_paper])."""
        return self.units.to_paper(self.ref[None, :], self.ideal)[0]

    def raw(self, F: np.ndarray) -> float:
        """Hypervolume of ``F`` up to ``ref`` in ``F`` units (rows beyond ``ref`` add nothing)."""
        F = np.asarray(F, dtype=float).reshape(-1, len(self.ref))
        return hypervolume(F[np.all(self.ref >= F, axis=1)], self.ref)

    def fraction(self, F: np.ndarray) -> float:
        """The dominated fraction of the box, in paper units: NSGANetV2/CNAS's reported HV."""
        F = np.asarray(F, dtype=float).reshape(-1, len(self.ref))
        U = self.units.to_paper(F, self.ideal)
        ref_u = self.ref_paper
        inside = np.all(ref_u >= U, axis=1)
        # a point beyond the ideal corner (an unbounded score that improved by more than the
        # DOE range) counts up to the corner: the fraction stays within [0, 1]
        U = np.clip(U[inside], 0.0, None)
        return hypervolume(U, ref_u) / float(np.prod(ref_u))
