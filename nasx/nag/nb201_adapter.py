"""NAS-Bench-201 cells as vertex-op DAGs (arch2vec's conversion).

NB201 puts one of 5 operations on each of the 6 edges of a 4-node cell (node 0 the cell input,
node 3 its output). The vertex-op graph has 8 vertices: the input, one vertex per edge in
gene order ``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``, and the output. The edge vertex ``i<-j``
reads node ``j`` (the input vertex for ``j = 0``, else the sum of the edge vertices into
``j``) and feeds node ``i`` (the output vertex for ``i = 3``)::

    input -> (1<-0), (2<-0), (3<-0)        (1<-0) -> (2<-1), (3<-1)
    (2<-0), (2<-1) -> (3<-2)               (3<-0), (3<-1), (3<-2) -> output

``none`` is an operation type like the others, so the topology is the same for all 15,625
cells and the conversion is a bijection (as in arch2vec and NAS-Bench-Suite's NB201 graphs);
dropping ``none`` vertices would map different cells to one graph. Types: ``0`` output, ``1``
input, ``2 + k`` for NB201's op ``k`` (``none, skip_connect, nor_conv_1x1, nor_conv_3x3,
avg_pool_3x3``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasx.nag.graph import OUTPUT, CellGraph, GraphAdapter, input_type
from nasx.search_space._nb201_net import EDGES, OPS
from nasx.search_space.base import Architecture
from nasx.search_space.nb201 import NB201Space

_N = len(EDGES) + 2
_OP0 = 2  # type code of NB201's op 0


def _adjacency() -> tuple[tuple[int, ...], ...]:
    adj = [[0] * _N for _ in range(_N)]
    for a, (to_a, _) in enumerate(EDGES, start=1):
        if to_a == 3:
            adj[a][_N - 1] = 1
        for b, (_, from_b) in enumerate(EDGES, start=1):
            if from_b == to_a:
                adj[a][b] = 1
    for b, (_, from_b) in enumerate(EDGES, start=1):
        if from_b == 0:
            adj[0][b] = 1
    return tuple(tuple(row) for row in adj)


#: the fixed vertex-op adjacency of every NB201 cell
ADJACENCY = _adjacency()


class NB201GraphAdapter(GraphAdapter):
    """NAS-Bench-201 for NAG: one cell of 8 vertices, 7 types (output, input, 5 ops).

    Args:
        space: the NB201 space (a default `NB201Space` when ``None``).
    """

    max_vertices = _N
    n_types = _OP0 + len(OPS)
    n_inputs = 1
    cell_names = ("cell",)
    type_names = ("output", "input", *OPS)

    def __init__(self, space: NB201Space | None = None) -> None:
        self.space = NB201Space() if space is None else space

    def allowed_types(self) -> np.ndarray:
        """The input at 0, an operation at each of 1..6, the output at 7."""
        out = np.zeros((self.max_vertices, self.n_types), dtype=bool)
        out[0, input_type(0)] = True
        out[1:-1, _OP0:] = True
        out[-1, OUTPUT] = True
        return out

    def allowed_edges(self) -> np.ndarray:
        """Exactly `ADJACENCY`: the topology is the same for every cell."""
        return np.asarray(ADJACENCY, dtype=bool)

    def to_graphs(self, arch: Architecture) -> tuple[CellGraph, ...]:
        if len(arch.genes) != len(EDGES) or not all(0 <= g < len(OPS) for g in arch.genes):
            raise ValueError(f"{arch} is not a NAS-Bench-201 cell")
        types = (input_type(0), *(_OP0 + g for g in arch.genes), OUTPUT)
        return (CellGraph(types, ADJACENCY),)

    def from_graphs(self, graphs: Sequence[CellGraph]) -> Architecture | None:
        """The cell of ``graphs``; ``None`` unless it is one graph of NB201's exact shape.

        The graph must have the 8 vertices, the input and output types at the ends, an
        operation type on every edge vertex, and exactly `ADJACENCY` as its edges.
        """
        if len(graphs) != 1:
            return None
        (g,) = graphs
        if g.n_vertices != _N or g.adjacency != ADJACENCY:
            return None
        if g.types[0] != input_type(0) or g.types[-1] != OUTPUT:
            return None
        genes = tuple(t - _OP0 for t in g.types[1:-1])
        if not all(0 <= k < len(OPS) for k in genes):
            return None
        return Architecture(genes)
