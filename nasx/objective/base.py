"""The objective contract: a cost of an architecture to minimise (params, FLOPs, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from nasx.search_space.base import Architecture, SearchSpace


class Objective(ABC):
    """Base class of every cost in ``objective=`` (template method: `__call__` -> `_compute`).

    Values are cached per architecture: costs are deterministic.
    """

    name: str = "objective"

    def __init__(self) -> None:
        self._cache: dict[tuple[int, ...], float] = {}

    def __call__(self, arch: Architecture, space: SearchSpace) -> float:
        """The cost of ``arch`` (lower is better)."""
        if arch.genes not in self._cache:
            self._cache[arch.genes] = float(self._compute(arch, space))
        return self._cache[arch.genes]

    @abstractmethod
    def _compute(self, arch: Architecture, space: SearchSpace) -> float:
        """Compute the cost."""
