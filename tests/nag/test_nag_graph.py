from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nasx.nag.graph import OUTPUT, CellGraph, is_valid_cell, prune
from nasx.nag.nb201_adapter import ADJACENCY, NB201GraphAdapter
from nasx.search_space.base import Architecture


def test_nb201_round_trip_is_exact_on_every_cell() -> None:
    adapter = NB201GraphAdapter()
    archs = adapter.space.enumerate()
    assert len(archs) == 15625
    graphs = [adapter.to_graphs(a) for a in archs]
    assert [adapter.from_graphs(g) for g in graphs] == archs
    assert len(set(graphs)) == len(archs)  # hashable and injective
    assert all(is_valid_cell(g, 1, adapter.n_types) for (g,) in graphs[:500])


def test_nb201_graph_is_arch2vecs() -> None:
    # |nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|
    (g,) = NB201GraphAdapter().to_graphs(Architecture((3, 0, 1, 4, 2, 0)))
    assert g.types == (1, 5, 2, 3, 6, 4, 2, OUTPUT)
    # arch2vec's NB201 matrix: input feeds the edges out of node 0, node 1's edge feeds the
    # edges out of node 1, the edges into node 2 feed 3<-2, the edges into node 3 the output
    expected = np.zeros((8, 8), dtype=np.uint8)
    for i, j in [(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 6), (3, 6), (4, 7), (5, 7), (6, 7)]:
        expected[i, j] = 1
    assert (g.to_numpy()[1] == expected).all()
    assert CellGraph.from_numpy(*g.to_numpy()) == g


def test_nb201_rejects_other_graphs() -> None:
    adapter = NB201GraphAdapter()
    (g,) = adapter.to_graphs(Architecture((1,) * 6))
    types, adj = g.to_numpy()
    adj2 = adj.copy()
    adj2[0, 3] = 1
    assert adapter.from_graphs([CellGraph.from_numpy(types, adj2)]) is None
    types2 = types.copy()
    types2[3] = OUTPUT
    assert adapter.from_graphs([CellGraph.from_numpy(types2, adj)]) is None
    assert adapter.from_graphs([g, g]) is None
    assert (
        adapter.from_graphs([prune(CellGraph((1, 3, 0), ((0, 1, 0), (0, 0, 1), (0, 0, 0))), 1)])
        is None
    )
    assert np.asarray(ADJACENCY, dtype=bool).sum() == 10


def test_cell_graph_rejects_backward_edges() -> None:
    with pytest.raises(ValueError, match="forward"):
        CellGraph((1, 3, 0), ((0, 0, 0), (1, 0, 0), (0, 0, 0)))
    with pytest.raises(ValueError, match="3x3"):
        CellGraph((1, 3, 0), ((0, 1), (0, 0)))


def test_prune_keeps_both_inputs_and_drops_dead_vertices() -> None:
    # 2 inputs (types 1, 2), ops 3..7, output 0; input1 reaches nothing, vertex 3 is a dead end,
    # vertex 4 has no path from an input: the reference would delete input1 and shift indices
    types = (1, 2, 3, 4, 5, 0)
    edges = [(0, 2), (2, 5), (0, 3), (4, 5)]
    adj = np.zeros((6, 6), dtype=np.uint8)
    for i, j in edges:
        adj[i, j] = 1
    pruned = prune(CellGraph.from_numpy(types, adj), n_inputs=2)
    assert pruned.types == (1, 2, 3, 0)
    assert pruned.adjacency == ((0, 0, 1, 0), (0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 0, 0))
    assert is_valid_cell(pruned, 2, 8)
    assert not is_valid_cell(CellGraph.from_numpy(types, adj), 2, 8)  # not pruned


def test_unreachable_output_is_invalid() -> None:
    g = CellGraph((1, 2, 3, 0), ((0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 0, 0)))
    assert prune(g, 2).types == (1, 2, 0)
    assert not is_valid_cell(prune(g, 2), 2, 8)


def test_nag_package_does_not_import_lightning() -> None:
    code = (
        "import nasx.nag.gan, nasx.nag.graph, nasx.nag.labels, nasx.nag.nb201_adapter, "
        "nasx.nag.sampling, sys; bad = [m for m in sys.modules if m.split('.')[0] in "
        "('lightning', 'pytorch_lightning')]; assert not bad, bad"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
