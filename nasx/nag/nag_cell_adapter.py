"""NAG's own cell space as vertex-op DAGs: the adapter the reference's GAN was written for.

`nasx.search_space.nag_cell.NAGCellSpace` holds an architecture as a (normal, reduction)
pair of cells. Each cell is already a vertex-op DAG in NAG's vocabulary (seed-nag.md §1.1:
``output=0, input0=1, input1=2``, then the five operations), so the type codes of a
`CellGraph` are exactly the indices of `VOCAB` and the conversion is the reference's
``graph2arch`` without its input-deleting pruning (§3.6, §8.3): both inputs always stay.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasx.errors import NasxError
from nasx.nag.graph import CellGraph, GraphAdapter, is_valid_cell
from nasx.search_space._nag_cell import VOCAB, reference_form, spec_from_reference
from nasx.search_space.base import Architecture
from nasx.search_space.nag_cell import NAGCellSpace


class NAGCellGraphAdapter(GraphAdapter):
    """NAG's space for NAG's GAN: two cells (normal, reduction) of at most V vertices.

    The vocabulary is NAG's 8 codes, the grammar NAG's (`GraphAdapter.allowed_types` and
    `GraphAdapter.allowed_edges`: input0 and input1 first, then operations until the output,
    which is forced at vertex V; any forward edge except input0 -> input1).

    Args:
        space: the NAG cell space (a default `NAGCellSpace` when ``None``).
    """

    n_types = len(VOCAB)
    n_inputs = 2
    cell_names = ("normal", "reduce")
    type_names = VOCAB

    def __init__(self, space: NAGCellSpace | None = None) -> None:
        self.cells_space = NAGCellSpace() if space is None else space
        self.space = self.cells_space
        self.max_vertices = self.cells_space.max_vertices

    def to_graphs(self, arch: Architecture) -> tuple[CellGraph, ...]:
        """The canonical (pruned) normal and reduction cells of ``arch``."""
        out = []
        for spec in self.cells_space.cells(arch):
            matrix, ops = reference_form(spec)
            out.append(CellGraph.from_numpy([VOCAB.index(o) for o in ops], matrix))
        return tuple(out)

    def from_graphs(self, graphs: Sequence[CellGraph]) -> Architecture | None:
        """The architecture of a (normal, reduction) pair; ``None`` unless both are cells.

        A graph is a cell when `is_valid_cell` holds: inputs first, output last, operation
        types between, no input0 -> input1 edge, and every vertex on an input-to-output
        path (the generator prunes what it grows, so an output no input reaches is the one
        way a generated graph fails, as in the reference).
        """
        if len(graphs) != len(self.cell_names):
            return None
        specs = []
        for g in graphs:
            if g.n_vertices > self.max_vertices or not is_valid_cell(
                g, self.n_inputs, self.n_types
            ):
                return None
            types, adj = g.to_numpy()
            try:
                specs.append(spec_from_reference(np.triu(adj, 1), [VOCAB[t] for t in types]))
            except ValueError:
                return None
        try:
            return self.cells_space.from_cells(specs[0], specs[1])
        except NasxError:
            return None
