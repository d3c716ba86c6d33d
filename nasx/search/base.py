"""The search-strategy contract: ask for architectures, be told their objective values."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from nasx.search_space.base import Architecture, SearchSpace


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
        self.n_obj = 1

    def setup(self, space: SearchSpace, n_obj: int, run_seed: int) -> None:
        """Bind the space and the number of objectives; seed the generator."""
        self.space, self.n_obj = space, n_obj
        seed = run_seed if self.seed is None else self.seed
        self.rng = np.random.default_rng(seed)
        self._setup(seed)

    def _setup(self, seed: int) -> None:  # noqa: B027  (an optional hook, not abstract)
        """Hook for strategies with more state to build."""

    def ask(self) -> list[Architecture]:
        """The next architectures to evaluate (empty: the strategy is finished)."""
        return self._ask()

    def tell(self, archs: Sequence[Architecture], F: np.ndarray) -> None:
        """Report the objective rows of ``archs`` (the list `ask` returned)."""
        F = np.asarray(F, dtype=float).reshape(len(archs), self.n_obj)
        self._tell(list(archs), F)

    @abstractmethod
    def _ask(self) -> list[Architecture]: ...

    @abstractmethod
    def _tell(self, archs: list[Architecture], F: np.ndarray) -> None: ...
