"""What an architecture diagram shows, per search space: nodes, edges and labelled strips.

`diagram_spec` turns ``(space, arch)`` into a `Diagram` of panels, a `CellGraph` (a DAG of
labelled nodes and edges: NB201, DARTS and NAG cells) or a `BlockStrip` (a per-layer table:
MobileNet and OFA block lists). It dispatches on the space's type
(`functools.singledispatch`), so the spaces hold no plotting code and a new space adds its
drawing with ``@diagram_spec.register``. `nasx.diagrams.draw` renders a `Diagram`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatch

from nasx.search_space._mobilenet_net import BLOCKS, SKIP, STAGES
from nasx.search_space._nb201_net import EDGES as NB201_EDGES
from nasx.search_space._nb201_net import OPS as NB201_OPS
from nasx.search_space.base import Architecture, SearchSpace
from nasx.search_space.darts import DartsSpace
from nasx.search_space.early_exit import _EarlyExitSpace
from nasx.search_space.mobilenet import MobileNetSpace
from nasx.search_space.nag_cell import NAGCellSpace
from nasx.search_space.nb201 import NB201Space
from nasx.search_space.ofa_mbv3 import MAX_DEPTH, N_STAGES, OFAMobileNetV3Space


@dataclass(frozen=True)
class Node:
    """A vertex of a cell graph.

    ``kind`` places it: ``input`` nodes sit in the first column, ``output`` nodes in the last,
    the others (``op``, ``node``) in the column of their longest path from an input.
    """

    id: int
    label: str
    kind: str = "node"


@dataclass(frozen=True)
class Edge:
    """A directed edge ``src -> dst``, labelled with its operation (``""``: none).

    ``dashed`` marks a connection that is no operation (DARTS's concatenation into the output).
    """

    src: int
    dst: int
    label: str = ""
    dashed: bool = False


@dataclass(frozen=True)
class CellGraph:
    """A cell as a DAG: NB201/DARTS put ops on edges, NAG on vertices."""

    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


@dataclass(frozen=True)
class BlockStrip:
    """A block list as a table: one column per layer, one row per setting.

    ``rows`` holds ``(name, values)`` with one value per column (``""``: inactive layer);
    ``groups`` splits the columns into labelled runs (stages), summing to the column count.
    """

    title: str
    rows: tuple[tuple[str, tuple[str, ...]], ...]
    groups: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Diagram:
    """The panels of one architecture's figure, drawn side by side (cells) or stacked."""

    title: str
    panels: tuple[CellGraph | BlockStrip, ...]


@singledispatch
def diagram_spec(space: SearchSpace, arch: Architecture) -> Diagram | None:
    """The diagram of ``arch`` in ``space`` (``None``: the space has no drawing)."""
    return None


@diagram_spec.register
def _nb201(space: NB201Space, arch: Architecture) -> Diagram:
    nodes = (
        Node(0, "0", "input"),
        Node(1, "1"),
        Node(2, "2"),
        Node(3, "3", "output"),
    )
    edges = tuple(
        Edge(j, i, NB201_OPS[k])
        for (i, j), k in zip(NB201_EDGES, arch.genes, strict=True)
        if NB201_OPS[k] != "none"
    )
    return Diagram("NAS-Bench-201 cell", (CellGraph("cell", nodes, edges),))


@diagram_spec.register
def _darts(space: DartsSpace, arch: Architecture) -> Diagram:
    panels = []
    for name, pairs in space.genotype(arch).items():
        nodes = [Node(0, "c_{k-2}", "input"), Node(1, "c_{k-1}", "input")]
        nodes += [Node(2 + i, str(i)) for i in range(4)]
        nodes.append(Node(6, "c_{k}", "output"))
        edges = [Edge(inp, 2 + i // 2, op) for i, (op, inp) in enumerate(pairs)]
        edges += [Edge(2 + i, 6, dashed=True) for i in range(4)]
        panels.append(CellGraph(f"{name} cell", tuple(nodes), tuple(edges)))
    return Diagram("DARTS cells", tuple(panels))


@diagram_spec.register
def _nag(space: NAGCellSpace, arch: Architecture) -> Diagram:
    panels = []
    for name, cell in zip(("normal", "reduction"), space.cells(arch), strict=True):
        out = cell.n - 1
        nodes = [Node(0, "input0", "input"), Node(1, "input1", "input")]
        nodes += [Node(k + 2, op, "op") for k, op in enumerate(cell.ops)]
        nodes.append(Node(out, "output", "output"))
        edges = [Edge(p, k + 2) for k, preds in enumerate(cell.preds[:-1]) for p in preds]
        edges += [Edge(p, out) for p in cell.out_preds]
        panels.append(CellGraph(f"{name} cell", tuple(nodes), tuple(edges)))
    return Diagram("NAG cells", tuple(panels))


@diagram_spec.register
def _mobilenet(space: MobileNetSpace, arch: Architecture) -> Diagram:
    kernels: list[str] = []
    expands: list[str] = []
    for op in space.ops(arch):
        k, e = ("skip", "") if op == SKIP else (str(BLOCKS[op][0]), str(BLOCKS[op][1]))
        kernels.append(k)
        expands.append(e)
    groups = tuple((f"C{int(c * space.width_mult)} s{s}", n) for c, n, s in STAGES)
    rows = (("kernel", tuple(kernels)), ("expand", tuple(expands)))
    title = f"MobileNet block list ({space.image_size}x{space.image_size} input)"
    return Diagram(title, (BlockStrip("layers", rows, groups),))


@diagram_spec.register
def _ofa(space: OFAMobileNetV3Space, arch: Architecture) -> Diagram:
    sub = space.subnet(arch)
    kernels: list[str] = []
    expands: list[str] = []
    pos = 0
    for d in sub["d"]:
        for layer in range(MAX_DEPTH):
            active = layer < d
            kernels.append(str(sub["ks"][pos + layer]) if active else "")
            expands.append(str(sub["e"][pos + layer]) if active else "")
        pos += d
    rows: list[tuple[str, tuple[str, ...]]] = [
        ("kernel", tuple(kernels)),
        ("expand", tuple(expands)),
    ]
    if isinstance(space, _EarlyExitSpace):
        rows.append(("exit", _exit_row(space, arch, sub["d"])))
    groups = tuple((f"stage {s + 1} (d={sub['d'][s]})", MAX_DEPTH) for s in range(N_STAGES))
    title = f"OFA MobileNetV3 block list ({space.resolution_of(arch)}px input)"
    return Diagram(title, (BlockStrip("layers", tuple(rows), groups),))


def _exit_row(space: _EarlyExitSpace, arch: Architecture, depths: list[int]) -> tuple[str, ...]:
    """``exit`` (or its threshold) under the last active layer of each stage with an exit."""
    ec = space.exit_config(arch)
    row = [""] * (N_STAGES * MAX_DEPTH)
    for i, stage in enumerate(ec.stages):
        text = "exit" if ec.thresholds is None else f"t={ec.thresholds[i]:g}"
        row[(stage - 1) * MAX_DEPTH + depths[stage - 1] - 1] = text
    row[(N_STAGES - 1) * MAX_DEPTH + depths[-1] - 1] = "final"
    return tuple(row)
