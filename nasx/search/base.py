"""The search-strategy contract: ask for architectures, be told their objective values."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from nasx.search_space.base import Architecture, SearchSpace

#: ``costs(arch[, measured]) -> (cost columns of F, G)``, exact
#: (`nasx.evaluator.Evaluator.cost_row`); ``measured`` supplies predicted values of the costs
#: the metric measures (NaN columns without it)
CostFn = Callable[..., tuple[np.ndarray, np.ndarray]]
#: ``population(cost columns of a population) -> the columns a search minimises``
#: (`nasx.evaluator.Evaluator.population_costs`)
PopulationFn = Callable[[np.ndarray], np.ndarray]


class SearchStrategy(ABC):
    """Base class of every ``search=`` option. A strategy never trains or evaluates.

    The pipeline loops ``archs = ask(); F = evaluate(archs); tell(archs, F)`` until `ask`
    returns nothing or ``n_evals`` distinct architectures have been evaluated. ``F`` holds one
    row per architecture, every column minimised (a maximised metric arrives negated). A
    strategy may ask for an architecture evaluated before; the pipeline answers from its archive.
    Strategies are deterministic given their seed and the values told, which is what makes a
    resumed search replay to the same state.

    Args:
        n_evals: budget, the number of distinct architectures evaluated.
        seed: the strategy's own seed; ``None`` takes the run seed.
    """

    def __init__(self, n_evals: int, seed: int | None = None) -> None:
        if n_evals < 1:
            raise ValueError(f"search.n_evals must be >= 1, got {n_evals}")
        self.n_evals = n_evals
        self.seed = seed
        self.space: SearchSpace
        self.rng: np.random.Generator
        self.n_obj, self.n_constr = 1, 0
        self.costs: CostFn | None = None
        #: per cost column, whether the metric measures it (`nasx.objective.MeasuredObjective`)
        self.measured: tuple[bool, ...] = ()
        self.population_fn: PopulationFn | None = None
        #: constraint rows of the last `tell` (strategies that handle constraints read it)
        self._G = np.zeros((0, 0))

    def setup(
        self,
        space: SearchSpace,
        n_obj: int,
        run_seed: int,
        n_constr: int = 0,
        costs: CostFn | None = None,
        measured: Sequence[bool] = (),
        population: PopulationFn | None = None,
    ) -> None:
        """Bind the space, the numbers of objectives and constraints; seed the generator.

        ``costs`` gives the exact cost columns of ``F`` and ``G`` of any architecture without
        evaluating the metric (`nasx.evaluator.Evaluator.cost_row`); surrogate-assisted
        strategies need it, others ignore it. ``measured`` flags the cost columns only an
        evaluation measures (a surrogate-assisted strategy predicts them); ``population``
        turns a population's cost columns into what it minimises (NACHOS's
        feasibility-weighted bound; identity when ``None``).
        """
        self.space, self.n_obj, self.n_constr, self.costs = space, n_obj, n_constr, costs
        self.measured, self.population_fn = tuple(measured), population
        seed = run_seed if self.seed is None else self.seed
        self.rng = np.random.default_rng(seed)
        self._setup(seed)

    def _setup(self, seed: int) -> None:  # noqa: B027  (an optional hook, not abstract)
        """Hook for strategies with more state to build."""

    def ask(self) -> list[Architecture]:
        """The next architectures to evaluate (empty: the strategy is finished)."""
        return self._ask()

    def tell(
        self, archs: Sequence[Architecture], F: np.ndarray, G: np.ndarray | None = None
    ) -> None:
        """Report the objective rows ``F`` (and constraint rows ``G``, ``<= 0`` feasible)."""
        F = np.asarray(F, dtype=float).reshape(len(archs), self.n_obj)
        if G is None or self.n_constr == 0:
            G = np.zeros((len(archs), self.n_constr))
        self._G = np.asarray(G, dtype=float).reshape(len(archs), self.n_constr)
        self._tell(list(archs), F)

    def info(self) -> dict[str, Any]:
        """What the strategy reports per iteration (e.g. the surrogate's fit); ``{}``."""
        return {}

    def rescore(self, F: Mapping[tuple[int, ...], np.ndarray]) -> None:
        """Replace the objective rows of architectures told before (keyed by genes).

        Called when the metric's scale changes with the archive (FlatNAS ``top1_robust``);
        strategies that keep told values must update them (`_rescore`).
        """
        self._rescore({k: np.asarray(v, dtype=float).reshape(self.n_obj) for k, v in F.items()})

    def _rescore(self, F: dict[tuple[int, ...], np.ndarray]) -> None:  # noqa: B027  (optional)
        """Hook: update stored values (nothing to do for strategies that keep none)."""

    @abstractmethod
    def _ask(self) -> list[Architecture]: ...

    @abstractmethod
    def _tell(self, archs: list[Architecture], F: np.ndarray) -> None: ...
