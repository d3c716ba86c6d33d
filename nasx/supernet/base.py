"""The supernet contract: one weight-sharing network per search space, registered by space type.

A `SearchSpace` is the encoding only; the network that holds every architecture of it, runs one
path, and hands out stand-alone sub-networks with inherited weights is a `Supernet`. Each space
module registers its supernet with `register_supernet`, and `build_supernet(space)` finds it,
so the pipeline, the metrics and the tests never name a concrete class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from nasx.errors import NasxError
from nasx.search_space.base import Architecture, SearchSpace


class Supernet(nn.Module, ABC):
    """Base class of every weight-sharing supernet.

    A subclass is built from its space alone (``Cls(space)``), keeps the space as `space`,
    and defines how one training step's path is drawn, which path runs an architecture, and
    how an architecture is cut out with its inherited weights. `path_weights` is the angle
    metric's vector (RLNAS); a space without one leaves `has_path_weights` ``False``.
    """

    #: the space this supernet holds (set by the subclass's constructor)
    space: SearchSpace
    #: whether `path_weights` is defined (the angle metric needs it)
    has_path_weights: bool = False

    @abstractmethod
    def forward(self, x: torch.Tensor, path: Any) -> torch.Tensor:
        """Logits of the sub-network ``path`` selects."""

    @abstractmethod
    def sample_path(self, rng: np.random.Generator) -> Any:
        """A training path drawn from ``rng`` (may differ per cell, as RLNAS samples)."""

    @abstractmethod
    def path_of(self, arch: Architecture) -> Any:
        """The path that runs ``arch`` everywhere."""

    @abstractmethod
    def extract(self, arch: Architecture) -> nn.Module:
        """A stand-alone network with copies of this supernet's weights, on its device.

        Contract (tested for every registered space): in eval mode its output equals
        ``self(x, self.path_of(arch))``.
        """

    def path_weights(
        self, state: Mapping[str, torch.Tensor], arch: Architecture
    ) -> torch.Tensor | None:
        """Flat vector of the weights in ``state`` on ``arch``'s paths (``None``: no path).

        ``state`` is a state dict of this supernet (the initial or the trained weights); the
        angle metric compares the vectors of both. Spaces without an angle vector raise.
        """
        raise NasxError(
            f"{type(self).__name__} defines no angle vector: use another metric than angle"
        )

    @property
    def device(self) -> torch.device:
        """Where the weights live (CPU for a supernet without parameters)."""
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")


_S = TypeVar("_S", bound=type[Supernet])
_REGISTRY: dict[type[SearchSpace], type[Supernet]] = {}


def register_supernet(space_type: type[SearchSpace]) -> Callable[[_S], _S]:
    """Class decorator: ``cls`` is the supernet of ``space_type`` (and of its subclasses)."""

    def decorate(cls: _S) -> _S:
        _REGISTRY[space_type] = cls
        return cls

    return decorate


def supernet_class(space: SearchSpace) -> type[Supernet]:
    """The registered supernet class of ``space``'s type (nearest registered base class)."""
    import nasx.supernet  # noqa: F401  (imports every space's supernet module: registration)

    for cls in type(space).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls]
    raise NasxError(
        f"no supernet is registered for {type(space).__name__}: decorate its Supernet class "
        "with @register_supernet(<space class>) and import it in nasx/supernet/__init__.py"
    )


def build_supernet(space: SearchSpace) -> Supernet:
    """A freshly initialised supernet of ``space`` (the global torch RNG initialises it)."""
    return supernet_class(space)(space)


def registered_spaces() -> list[type[SearchSpace]]:
    """Every space type with a supernet, in registration order (the contract tests use it)."""
    import nasx.supernet  # noqa: F401

    return list(_REGISTRY)
