"""FLOPs summed from a space's lookup table (RLNAS's MobileNet LUT), in millions."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from nasx.errors import NasxError
from nasx.objective.base import Objective
from nasx.search_space.base import Architecture, SearchSpace


@runtime_checkable
class HasFlopsLUT(Protocol):
    """A space with a FLOPs lookup table (e.g. `nasx.search_space.MobileNetSpace`)."""

    def lut_flops(self, arch: Architecture) -> float:
        """FLOPs (MACs) of ``arch`` summed from the table."""
        ...


class FlopsLUTObjective(Objective):
    """FLOPs (multiply-accumulates) from the space's lookup table, in millions.

    The value is ``space.lut_flops(arch) / 1e6``: RLNAS's MobileNet table with thop's rules
    (reference B.5), a sum of table rows, no network is built (hence ``cheap``). RLNAS's
    evolution keeps candidates at <= 475 (``upper: 475``, reference B.4). Bounds as in
    `nasx.objective.base.Objective`.

    Raises:
        NasxError (from `check` / a call): the space has no FLOPs lookup table.
    """

    name = "flops_lut"
    cheap = True

    def check(self, space: SearchSpace) -> None:
        """Raise `NasxError` unless ``space`` has a FLOPs lookup table (``lut_flops``)."""
        if not isinstance(space, HasFlopsLUT):
            raise NasxError(
                f"objective flops_lut needs a space with a FLOPs lookup table (lut_flops), and "
                f"{type(space).__name__} has none: use space=mobilenet, or objective=flops to "
                "count the built network instead"
            )

    def _compute(self, arch: Architecture, space: SearchSpace) -> float:
        self.check(space)
        assert isinstance(space, HasFlopsLUT)
        return space.lut_flops(arch) / 1e6
