"""The objective contract: a cost of an architecture to minimise, with optional bounds."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from numbers import Real

import numpy as np

from nasx.search_space.base import Architecture, SearchSpace

#: how a bound is enforced (see `Objective`)
HANDLINGS: tuple[str, ...] = ("constraint", "penalty", "feasibility")


class Objective(ABC):
    """Base class of every cost in ``objective=`` (template method: `__call__` -> `_compute`).

    Values are cached per architecture: costs are deterministic. ``__call__`` always returns the
    raw value; a bound never changes it. What a bound does is read from `violation` (the pymoo
    inequality constraint ``G``) and `penalized` (the value the search minimises under
    ``handling="penalty"``).

    Args:
        upper: the value must be ``<= upper`` (``None``: no upper bound).
        lower: the value must be ``>= lower`` (``None``: no lower bound).
        handling: ``"constraint"``: the bound is a pymoo inequality constraint,
            ``G = violation(value)`` (``value - upper`` resp. ``lower - value`` where positive,
            else 0), and the objective stays the raw value. ``"penalty"``: CNAS's static
            exterior penalty, the objective becomes ``value + penalty * violation(value)`` and
            no constraint is added.
            ``"feasibility"``: NACHOS's feasibility-weighted form of an upper bound, applied
            to a whole population by `population` (``phi * c + (1 - phi) * violation *
            penalty``, ``phi`` the feasible share): the surrogate-assisted search minimises it
            on predicted values (CNAS ``cnas.py:642-670``); records keep the raw value and no
            constraint is added.
        penalty: the factor of the exterior penalty (read under ``"penalty"`` and
            ``"feasibility"``); 1e10 as in CNAS puts infeasible networks about ten orders of
            magnitude above feasible ones.

    Raises:
        ValueError: unknown ``handling``, a bound that is not a finite number,
            ``lower > upper``, or a penalty that is not a positive finite number.
    """

    name: str = "objective"
    #: ``True`` when the value is measured by the metric (`MeasuredObjective`: read from its
    #: output under `key`), so no value exists before an evaluation
    measured: bool = False
    #: ``True`` when a value is a table lookup, so `check_feasible` may scan a whole
    #: enumerable space instead of a sample
    cheap: bool = False

    def __init__(
        self,
        upper: float | None = None,
        lower: float | None = None,
        handling: str = "constraint",
        penalty: float = 1e10,
    ) -> None:
        if handling not in HANDLINGS:
            raise ValueError(
                f"{self.name}: handling={handling!r} is unknown: use 'constraint' (a pymoo "
                "inequality constraint) or 'penalty' (value + penalty * violation)"
            )
        for key, bound in (("upper", upper), ("lower", lower)):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, Real)):
                # hydra-zen types ``float | None`` as Any, so config values arrive unchecked
                raise ValueError(f"{self.name}: {key}={bound!r} must be a number or null")
            if bound is not None and not math.isfinite(bound):
                raise ValueError(f"{self.name}: {key}={bound} must be a finite number or null")
        if upper is not None and lower is not None and lower > upper:
            raise ValueError(
                f"{self.name}: lower={lower} > upper={upper}, so no value can meet both: "
                "swap them or drop one"
            )
        if not (math.isfinite(penalty) and penalty > 0):
            raise ValueError(f"{self.name}: penalty={penalty} must be a positive finite number")
        self.upper = None if upper is None else float(upper)
        self.lower = None if lower is None else float(lower)
        self.handling = handling
        self.penalty = float(penalty)
        self._cache: dict[tuple[int, ...], float] = {}

    # --- the value -----------------------------------------------------------------------
    def __call__(self, arch: Architecture, space: SearchSpace) -> float:
        """The raw cost of ``arch`` (lower is better); bounds do not change it."""
        if arch.genes not in self._cache:
            self._cache[arch.genes] = float(self._compute(arch, space))
        return self._cache[arch.genes]

    @abstractmethod
    def _compute(self, arch: Architecture, space: SearchSpace) -> float:
        """Compute the cost."""

    def check(self, space: SearchSpace) -> None:  # noqa: B027 (an optional hook)
        """Validate the cost against ``space`` before a search (no-op by default).

        Costs that read a table or a file check here that what they need exists, and raise
        `nasx.errors.NasxError` naming the fix, so that the problem is reported once instead
        of failing every evaluation.
        """

    # --- bounds --------------------------------------------------------------------------
    @property
    def has_bound(self) -> bool:
        """Whether an upper or lower bound is set."""
        return self.upper is not None or self.lower is not None

    @property
    def is_constraint(self) -> bool:
        """Whether the cost adds a pymoo inequality constraint (a bound with ``"constraint"``)."""
        return self.has_bound and self.handling == "constraint"

    def violation(self, value: float) -> float:
        """How far ``value`` is outside the bounds: ``>= 0``, 0 exactly when feasible.

        This is the pymoo ``G`` entry of a ``"constraint"`` bound. A NaN value with a bound
        has infinite violation (it cannot be shown to be feasible).
        """
        if not self.has_bound:
            return 0.0
        if math.isnan(value):
            return math.inf
        out = 0.0
        if self.upper is not None:
            out += max(0.0, value - self.upper)
        if self.lower is not None:
            out += max(0.0, self.lower - value)
        return out

    def feasible(self, value: float) -> bool:
        """Whether ``value`` meets every bound."""
        return self.violation(value) == 0.0

    def penalized(self, value: float) -> float:
        """The value to minimise: ``value + penalty * violation`` under ``"penalty"``.

        Under ``"constraint"`` (or without a bound) it is ``value`` itself.
        """
        if self.handling != "penalty" or not self.has_bound:
            return value
        v = self.violation(value)
        return value + self.penalty * v if v > 0 else value

    def population(self, values: np.ndarray) -> np.ndarray:
        """The column a population-based search minimises for these raw ``values``.

        The raw values, except under ``"feasibility"`` with an upper bound (NACHOS, CNAS
        ``cnas.py:642-670``): ``phi * c + (1 - phi) * max(0, c - upper) * penalty`` with
        ``phi`` the share of ``values`` that meet the bound.
        """
        values = np.asarray(values, dtype=float)
        if self.handling != "feasibility" or self.upper is None or values.size == 0:
            return values
        phi = float(np.mean(values <= self.upper))
        cv = np.clip(values - self.upper, 0.0, None)
        return phi * values + (1.0 - phi) * cv * self.penalty

    def bound_text(self) -> str:
        """The bound as text, e.g. ``"latency <= 5"`` or ``"1 <= flops <= 5"`` (``""``: none)."""
        if self.lower is not None and self.upper is not None:
            return f"{self.lower:g} <= {self.name} <= {self.upper:g}"
        if self.upper is not None:
            return f"{self.name} <= {self.upper:g}"
        if self.lower is not None:
            return f"{self.name} >= {self.lower:g}"
        return ""


class MeasuredObjective(Objective):
    """A cost the metric measures while it evaluates (e.g. EENN's ``avg_macs``).

    Its value is the metric's output under `key` (`value_of`); there is none before an
    evaluation, so calling it on an architecture alone raises. The surrogate-assisted search
    predicts it with a second surrogate (CNAS's ``sec_predictor``).
    """

    measured = True
    #: the metric output holding the value
    key: str = ""

    def __init__(
        self,
        upper: float | None = None,
        lower: float | None = None,
        handling: str = "feasibility",
        penalty: float = 1e10,
    ) -> None:
        super().__init__(upper, lower, handling, penalty)
        if handling == "penalty":
            # the second surrogate learns the raw column; a penalised one would be learnt
            raise ValueError(
                f"{self.name}: handling=penalty is not available for a measured cost: use "
                "feasibility (NACHOS) or constraint"
            )

    def value_of(self, metric_values: dict[str, float]) -> float:
        """The value in a metric's output; `KeyError` naming the metric option otherwise."""
        if self.key not in metric_values:
            raise KeyError(
                f"objective {self.name} reads the metric's {self.key!r}, which this metric does "
                "not report: use a metric that measures it"
            )
        return float(metric_values[self.key])

    def _compute(self, arch: Architecture, space: SearchSpace) -> float:
        raise ValueError(
            f"objective {self.name} is measured by the metric during an evaluation; it has no "
            "value for an architecture alone"
        )
