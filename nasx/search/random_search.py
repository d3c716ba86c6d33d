"""Random search: uniform samples, never the same architecture twice."""

from __future__ import annotations

import numpy as np

from nasx.search.base import SearchStrategy
from nasx.search_space.base import Architecture


class RandomSearch(SearchStrategy):
    """Uniformly random architectures, ``batch_size`` per iteration.

    Args:
        n_evals: budget (distinct architectures).
        batch_size: architectures per iteration (one ``iter_<k>.json`` each).
        seed: own seed (``None``: the run seed).
    """

    def __init__(self, n_evals: int = 100, batch_size: int = 10, seed: int | None = None) -> None:
        super().__init__(n_evals, seed)
        if batch_size < 1:
            raise ValueError(f"search.batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self._seen: set[tuple[int, ...]] = set()

    def _ask(self) -> list[Architecture]:
        out: list[Architecture] = []
        for _ in range(100 * self.batch_size):
            if len(out) == self.batch_size:
                break
            a = self.space.sample(self.rng)
            if a.genes not in self._seen:
                self._seen.add(a.genes)
                out.append(a)
        return out

    def _tell(self, archs: list[Architecture], F: np.ndarray) -> None:
        pass
