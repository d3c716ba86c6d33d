"""Architecture diagrams: one per space family, drawn with matplotlib into a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nasx.diagrams import BlockStrip, CellGraph, diagram_spec, draw_architecture
from nasx.diagrams.draw import layers
from nasx.search_space import (
    DartsSpace,
    EEMobileNetV3Space,
    MobileNetSpace,
    NachosMobileNetV3Space,
    NAGCellSpace,
    NB201Space,
    OFAMobileNetV3Space,
)
from nasx.search_space.base import SearchSpace
from nasx.search_space.ofa_mbv3 import MAX_DEPTH, N_STAGES

SPACES = {
    "nb201": NB201Space,
    "darts": DartsSpace,
    "mobilenet": MobileNetSpace,
    "ofa_mbv3": OFAMobileNetV3Space,
    "ee_mbv3": EEMobileNetV3Space,
    "nachos_mbv3": NachosMobileNetV3Space,
    "nag_cell": NAGCellSpace,
}


@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_space_draws_a_png(name: str, tmp_path: Path) -> None:
    space: SearchSpace = SPACES[name]()
    arch = space.sample(np.random.default_rng(0))
    path = draw_architecture(space, arch, tmp_path / "cell.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp")), "written atomically"


@pytest.mark.parametrize("name", ["nb201", "darts", "nag_cell"])
def test_cell_graphs_are_laid_out_in_topological_columns(name: str) -> None:
    space: SearchSpace = SPACES[name]()
    for seed in range(5):
        spec = diagram_spec(space, space.sample(np.random.default_rng(seed)))
        assert spec is not None
        for graph in spec.panels:
            assert isinstance(graph, CellGraph)
            col = layers(graph)
            assert all(col[e.src] < col[e.dst] for e in graph.edges)
            inputs = [n.id for n in graph.nodes if n.kind == "input"]
            (out,) = [n.id for n in graph.nodes if n.kind == "output"]
            assert all(col[i] == 0 for i in inputs) and col[out] == max(col.values())


def test_nb201_edges_are_the_non_none_genes() -> None:
    space = NB201Space()
    arch = space.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|none~2|")
    spec = diagram_spec(space, arch)
    assert spec is not None
    (graph,) = spec.panels
    assert isinstance(graph, CellGraph)
    assert {(e.src, e.dst, e.label) for e in graph.edges} == {
        (0, 1, "nor_conv_3x3"),
        (1, 2, "skip_connect"),
        (0, 3, "avg_pool_3x3"),
    }


def test_darts_has_normal_and_reduce_cells_with_two_ops_per_node() -> None:
    space = DartsSpace()
    spec = diagram_spec(space, space.sample(np.random.default_rng(1)))
    assert spec is not None and [p.title for p in spec.panels] == ["normal cell", "reduce cell"]
    for graph in spec.panels:
        assert isinstance(graph, CellGraph)
        ops = [e for e in graph.edges if not e.dashed]
        assert len(ops) == 8 and all(e.label for e in ops)
        assert sorted(e.dst for e in ops) == [2, 2, 3, 3, 4, 4, 5, 5]
        assert len([e for e in graph.edges if e.dashed]) == 4  # concatenated into the output


def test_nag_cells_put_ops_on_vertices() -> None:
    space = NAGCellSpace()
    arch = space.sample(np.random.default_rng(2))
    spec = diagram_spec(space, arch)
    assert spec is not None
    for graph, cell in zip(spec.panels, space.cells(arch), strict=True):
        assert isinstance(graph, CellGraph)
        assert [n.label for n in graph.nodes if n.kind == "op"] == list(cell.ops)
        assert not any(e.label for e in graph.edges)


def test_ofa_strip_shows_each_stage_depth_and_the_exits() -> None:
    space = EEMobileNetV3Space()
    arch = space.sample(np.random.default_rng(3))
    spec = diagram_spec(space, arch)
    assert spec is not None
    (strip,) = spec.panels
    assert isinstance(strip, BlockStrip)
    rows = dict(strip.rows)
    depths = space.subnet(arch)["d"]
    assert len(rows["kernel"]) == N_STAGES * MAX_DEPTH
    assert sum(v != "" for v in rows["kernel"]) == sum(depths)
    assert rows["exit"].count("final") == 1
    assert sum(v != "" for v in rows["exit"]) == 1 + len(space.exit_config(arch).stages)


def test_mobilenet_strip_has_one_column_per_layer() -> None:
    space = MobileNetSpace()
    arch = space.parse("2 0 -1 2 2 0 2 4 0 4 4 2 4 2 4 2 0 0 0 2 2")
    spec = diagram_spec(space, arch)
    assert spec is not None
    (strip,) = spec.panels
    assert isinstance(strip, BlockStrip)
    kernels = dict(strip.rows)["kernel"]
    assert len(kernels) == sum(n for _, n in strip.groups) == 21
    assert kernels[2] == "skip" and kernels[0] == "5"  # op 2 is k5e3


def test_a_space_without_a_drawing_gives_none() -> None:
    class Other(NB201Space):
        pass

    # subclasses inherit their parent's drawing; an unrelated space has none
    assert diagram_spec(Other(), Other().sample(np.random.default_rng(0))) is not None
    assert diagram_spec(object(), None) is None  # type: ignore[arg-type]
