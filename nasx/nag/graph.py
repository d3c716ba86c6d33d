"""Cells as vertex-op DAGs, the form NAG's generator grows and its discriminator reads.

A cell is a `CellGraph`: vertex types in topological order and an upper-triangular 0/1
adjacency (``adjacency[i][j] == 1``: an edge ``i -> j``, so ``i < j``). The vertex vocabulary
follows NAG (`utils.py:10-19` of ``kunjing96/NAG``): type ``0`` is the output marker, types
``1 .. n_inputs`` the cell inputs (input0, input1, ...), and every larger type an operation.
A cell is ``[input_0, ..., input_{k-1}, op, ..., op, output]``.

A `GraphAdapter` maps a search space's `Architecture` to one `CellGraph` per cell kind
(NAG: normal and reduction; NAS-Bench-201: one) and back; `prune` is NAG's validity step
(§3.6 of the notes) with the reference's input-deleting bug fixed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nasx.search_space.base import Architecture, SearchSpace

#: the type code of the output vertex; input ``k`` is ``1 + k``, operations follow
OUTPUT = 0


def input_type(k: int) -> int:
    """The type code of cell input ``k``."""
    return 1 + k


@dataclass(frozen=True)
class CellGraph:
    """One cell as an immutable, hashable vertex-op DAG.

    Attributes:
        types: the type code of each vertex, in topological order.
        adjacency: ``n x n`` rows of 0/1; ``adjacency[i][j] == 1`` is an edge ``i -> j``, and
            only ``i < j`` may be set (strictly upper-triangular).
    """

    types: tuple[int, ...]
    adjacency: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        n = len(self.types)
        if len(self.adjacency) != n or any(len(row) != n for row in self.adjacency):
            raise ValueError(f"adjacency must be {n}x{n} for {n} vertices")
        for i, row in enumerate(self.adjacency):
            for j, v in enumerate(row):
                if v not in (0, 1):
                    raise ValueError(f"adjacency[{i}][{j}] = {v!r} is not 0 or 1")
                if v and j <= i:
                    raise ValueError(f"edge {i}->{j} is not forward (upper-triangular only)")

    @property
    def n_vertices(self) -> int:
        return len(self.types)

    def predecessors(self, j: int) -> list[int]:
        """Vertices with an edge into ``j``."""
        return [i for i in range(j) if self.adjacency[i][j]]

    def to_numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """``(types, adjacency)`` as int64 vector and ``n x n`` uint8 matrix."""
        types = np.asarray(self.types, dtype=np.int64)
        adj = np.asarray(self.adjacency, dtype=np.uint8).reshape(len(self.types), len(self.types))
        return types, adj

    @classmethod
    def from_numpy(cls, types: np.ndarray | Sequence[int], adjacency: np.ndarray) -> CellGraph:
        """The graph of a type vector and an ``n x n`` 0/1 matrix (validated)."""
        adj = np.asarray(adjacency)
        return cls(
            tuple(int(t) for t in np.asarray(types).reshape(-1)),
            tuple(tuple(int(v) for v in row) for row in adj),
        )


def _reach(adj: np.ndarray, start: Sequence[int], forward: bool) -> np.ndarray:
    """Boolean mask of vertices reachable from ``start`` along (or against) the edges."""
    m = adj if forward else adj.T
    seen = np.zeros(len(adj), dtype=bool)
    stack = list(start)
    seen[stack] = True
    while stack:
        v = stack.pop()
        for w in np.flatnonzero(m[v]):
            if not seen[w]:
                seen[w] = True
                stack.append(int(w))
    return seen


def prune(graph: CellGraph, n_inputs: int) -> CellGraph:
    """Remove the operation vertices that are not on a path from an input to the output.

    NAG's ModelSpec pruning (`utils.py:218-253`), except that the inputs are always kept: the
    reference also deletes an input that does not reach the output, and the vertex indices
    then shift so that another vertex is read as input1 (§8.3 of the notes). The output (the
    last vertex) is kept too. A graph whose output is then not reachable from any input is
    returned pruned to its inputs and output; `is_valid_cell` rejects it.
    """
    _, adj = graph.to_numpy()
    n = len(adj)
    alive = _reach(adj, range(n_inputs), True) & _reach(adj, [n - 1], False)
    alive[:n_inputs] = True
    alive[n - 1] = True
    if alive.all():
        return graph
    keep = np.flatnonzero(alive)
    return CellGraph.from_numpy(np.asarray(graph.types)[keep], adj[np.ix_(keep, keep)])


def is_valid_cell(graph: CellGraph, n_inputs: int, n_types: int) -> bool:
    """Whether ``graph`` is a structurally valid, pruned cell.

    Valid: the first ``n_inputs`` vertices are the inputs in order, the last is the output,
    every other vertex has an operation type below ``n_types``, no edge joins two inputs, the
    output is reachable from an input, and every vertex lies on an input-to-output path
    (`prune` leaves it unchanged).
    """
    n = graph.n_vertices
    if n < n_inputs + 1:
        return False
    if graph.types[:n_inputs] != tuple(input_type(k) for k in range(n_inputs)):
        return False
    if graph.types[-1] != OUTPUT:
        return False
    if any(not n_inputs < t < n_types for t in graph.types[n_inputs:-1]):
        return False
    _, adj = graph.to_numpy()
    if adj[:n_inputs, :n_inputs].any():
        return False
    if not _reach(adj, range(n_inputs), True)[n - 1]:
        return False
    return prune(graph, n_inputs) == graph


class GraphAdapter(ABC):
    """A search space seen as vertex-op DAGs: the contract between a space and NAG's GAN.

    An adapter fixes the vocabulary (type ``0`` output, ``1 .. n_inputs`` inputs, then the
    space's operations up to ``n_types - 1``), the largest cell (``max_vertices``, inputs and
    output included) and how many cells an architecture has (``cell_names``). `to_graphs` and
    `from_graphs` are inverse on the space's architectures; `from_graphs` returns ``None`` for
    graphs that are no architecture of the space.
    """

    space: SearchSpace
    #: the largest cell, inputs and output included (the generator's ``max_step``)
    max_vertices: int
    #: size of the vertex vocabulary: output, the inputs and the operations
    n_types: int
    #: number of input vertices of a cell
    n_inputs: int
    #: one name per cell kind of an architecture, in `to_graphs` order
    cell_names: tuple[str, ...]
    #: a name per type code (output, inputs, operations)
    type_names: tuple[str, ...]

    @property
    def n_cells(self) -> int:
        """Number of cells per architecture (one generator and discriminator each)."""
        return len(self.cell_names)

    def allowed_types(self) -> np.ndarray:
        """``(max_vertices, n_types)`` bool: the types each vertex position may take.

        The generator never draws a type outside it. The default is NAG's grammar: input
        ``k`` at position ``k``, then an operation or the output, and the output at the last
        position. A space with a fixed cell size narrows it (NAS-Bench-201: operations at
        1..6, the output only at 7).
        """
        out = np.zeros((self.max_vertices, self.n_types), dtype=bool)
        for k in range(self.n_inputs):
            out[k, input_type(k)] = True
        out[self.n_inputs : -1, OUTPUT] = True
        out[self.n_inputs : -1, self.n_inputs + 1 :] = True
        out[-1, OUTPUT] = True
        return out

    def allowed_edges(self) -> np.ndarray:
        """``(max_vertices, max_vertices)`` bool: the edges ``i -> j`` a cell may have.

        The generator gives every other edge probability 0. The default is NAG's: any forward
        edge except between two inputs. A space with a fixed topology returns exactly it.
        """
        out = np.triu(np.ones((self.max_vertices, self.max_vertices), dtype=bool), 1)
        out[: self.n_inputs, : self.n_inputs] = False
        return out

    @abstractmethod
    def to_graphs(self, arch: Architecture) -> tuple[CellGraph, ...]:
        """One graph per cell kind, in `cell_names` order."""

    @abstractmethod
    def from_graphs(self, graphs: Sequence[CellGraph]) -> Architecture | None:
        """The architecture of ``graphs`` (``None``: not an architecture of the space)."""
