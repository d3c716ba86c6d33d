"""The graph adapter of a search space: which spaces NAG's generator can grow cells for."""

from __future__ import annotations

from nasx.errors import NasxError
from nasx.nag.graph import GraphAdapter
from nasx.nag.nag_cell_adapter import NAGCellGraphAdapter
from nasx.nag.nb201_adapter import NB201GraphAdapter
from nasx.search_space.base import SearchSpace
from nasx.search_space.nag_cell import NAGCellSpace
from nasx.search_space.nb201 import NB201Space

#: the cell-graph spaces and their adapters (a new cell space adds its pair here)
ADAPTERS: tuple[tuple[type[SearchSpace], type[GraphAdapter]], ...] = (
    (NB201Space, NB201GraphAdapter),
    (NAGCellSpace, NAGCellGraphAdapter),
)


def adapter_for(space: SearchSpace) -> GraphAdapter:
    """The `GraphAdapter` of ``space``; a `NasxError` naming the cell spaces otherwise."""
    for space_cls, adapter_cls in ADAPTERS:
        if isinstance(space, space_cls):
            return adapter_cls(space)  # type: ignore[call-arg]
    raise NasxError(
        f"NAG's generator grows cell graphs, and {type(space).__name__} has no graph adapter: "
        "use space=nb201, nb201_cpu, nag_cell or nag_cell_cpu with search=gan"
    )
