"""NAGCellSpace: gene layout, canonical repair, pruning, §1.4 graphs, §6 cells, supernet."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasx.errors import NasxError
from nasx.objective.profile import count_params
from nasx.search_space import Architecture, NAGCellSpace
from nasx.search_space._nag_cell import CellSpec, canonical_cell, cell_genes, encode_cell
from nasx.supernet import build_supernet

pytestmark = pytest.mark.usefixtures("one_thread")

HIGH_ACC = (
    "normal=[sep3(0,1) sep5(1) max3(1,3) sep5(1,3,4) sep5(0,3,4) sep5(1,2,5,6) out(0,1,2,3,4,7)] "
    "reduce=[sep5(0,1) sep3(0,1,2) sep5(1) out(0,1,2,3,4)]"
)


def tiny(**kw) -> NAGCellSpace:
    return NAGCellSpace(num_classes=5, channels=4, cells_per_stage=1, image_size=8, **kw)


def raw(ops: dict[int, int], preds: dict[int, list[int]], out: list[int], v: int = 10) -> list[int]:
    """One cell's genes from slot -> op gene, slot -> predecessor list and output preds."""
    genes: list[int] = []
    for t in range(2, v - 1):
        genes += [ops.get(t, 0)] + [int(p in preds.get(t, [])) for p in range(t)]
    return genes + [int(p in out) for p in range(v - 1)]


# --- encoding ------------------------------------------------------------------------------


def test_gene_layout():
    space = NAGCellSpace()
    assert cell_genes(10) == 7 + sum(range(2, 9)) + 9 == 51
    assert space.n_var == 102
    # slot t's op gene sits after the genes of slots 2..t-1 (1 + t' each), bounds 0..5
    op_at = [sum(1 + s for s in range(2, t)) for t in range(2, 9)]
    assert op_at == [0, 3, 7, 12, 18, 25, 33]
    assert all(space.upper[i] == 5 for i in op_at) and space.upper.sum() == 2 * (7 * 5 + 44)
    spec = CellSpec(("sep3", "id"), ((0, 1), (2,), (1, 3)))
    genes = encode_cell(spec, 10)
    assert genes[:3] == [1, 1, 1] and genes[3:7] == [5, 0, 0, 1]
    assert canonical_cell(genes, 10) == (spec, True)


def test_round_trips_through_every_form():
    space = NAGCellSpace()
    rng = np.random.default_rng(0)
    for arch in [space.sample(rng) for _ in range(30)] + [space.parse("NAG_HIGH_ACC")]:
        assert space.parse(space.to_str(arch)) == arch
        assert space.decode(arch.encode()) == arch
        assert space.parse(" ".join(map(str, arch.genes))) == arch
        ref = json.dumps(space.reference_files(arch)["nag_cells.json"])
        assert space.parse(ref) == arch
        assert space.from_graphs(space.graphs(arch)) == arch
    assert space.to_str(space.parse("NAG_HIGH_ACC")) == HIGH_ACC
    sizes = {space.cells(space.sample(rng))[0].n for _ in range(60)}
    assert len(sizes) >= 3 and max(sizes) == 10  # §2.3 favours 10-vertex cells


def test_repair_is_one_canonical_form():
    space = NAGCellSpace()
    # vertex max3 at slot 6 reading input1, feeding the output; slot 3 is an op whose only
    # predecessor is the empty slot 4 (unreachable); slot 5 reaches nothing (dangling)
    messy = raw({3: 4, 5: 1, 6: 4}, {3: [], 5: [0, 1], 6: [1, 4]}, [6, 4, 0])
    clean = raw({2: 4}, {2: [1]}, [0, 2])
    a = space.decode(messy + clean)
    assert a == space.decode(clean + clean)
    assert space.to_str(a) == "normal=[max3(1) out(0,2)] reduce=[max3(1) out(0,2)]"
    # the same cell in other slots, or with edges out of empty slots, is the same genes
    moved = raw({7: 4}, {7: [1, 3]}, [0, 7, 5])
    assert space.decode(moved + clean) == a
    assert space.decode(space.lower) == space.parse("normal=[out(1)] reduce=[out(1)]")
    for arch in space.extremes():
        assert space._repair(arch, None) == arch
    assert space.parse("normal=[sep3(0) avg3(0) out(1)] reduce=[out(1)]") == space.decode(
        space.lower
    )  # vertices that reach no output are pruned from every form


def test_pruning_never_deletes_an_input():
    # the §8.3 case: input0 feeds only a dead vertex and does not reach the output; the
    # reference deletes it and reads vertex 2 as input1, here both inputs stay in place
    space = tiny()
    text = (
        "normal_matrix = [[0,0,0,1,0],[0,0,1,0,1],[0,0,0,0,1],[0,0,0,0,0],[0,0,0,0,0]]\n"
        "normal_ops = ['input0','input1','seqconv3x3','maxpool3x3','output']\n"
        "reduce_matrix = [[0,0,1],[0,0,1],[0,0,0]]\nreduce_ops = ['input0','input1','output']"
    )
    arch = space.parse(text)
    normal, reduce = space.cells(arch)
    assert normal == CellSpec(("sep3",), ((1,), (1, 2)))  # max3 (dead end) pruned
    assert not normal.uses_input(0) and normal.uses_input(1)
    assert reduce == CellSpec((), ((0, 1),))
    m, ops = space.graphs(arch)[0].edge, space.graphs(arch)[0].node
    assert ops[0, 1] == ops[1, 2] == 1  # vertex 0 is input0, vertex 1 input1
    assert m[2, 1] == 1 and m[:, 0].sum() == 0
    net = space.build_network(arch)
    assert not any(k.startswith("cells.0.pre0") for k in net.state_dict())  # input0 unread
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 5)


def test_graph_encoding_is_the_gans():
    space = NAGCellSpace()
    normal, reduce = space.graphs(space.parse("NAG_HIGH_ACC"))
    for g, n in ((normal, 9), (reduce, 6)):
        assert g.edge.shape == (10, 10) and g.node.shape == (10, 8) and g.n == n
        assert g.edge.dtype == np.float32 and not np.triu(g.edge).any()  # [dst, src]
        assert (g.node[:n].sum(1) == 1).all() and not g.node[n:].any()
        assert not g.edge[n:].any() and not g.edge[:, n:].any()
    # codes: output 0, input0 1, input1 2, seqconv3x3 3, seqconv5x5 4, ..., maxpool3x3 6
    assert list(normal.node[:9].argmax(1)) == [1, 2, 3, 4, 6, 4, 4, 4, 0]
    assert normal.edge[7].nonzero()[0].tolist() == [1, 2, 5, 6]  # v7 <- in1, v2, v5, v6
    assert reduce.edge[5].nonzero()[0].tolist() == [0, 1, 2, 3, 4]


def test_malformed_text_is_refused():
    space = tiny()
    bad = [
        "normal=[sep3(0,1) out(2)]",  # no reduction cell
        "normal=[conv(0) out(2)] reduce=[out(1)]",  # unknown op
        "normal=[sep3(2) out(2)] reduce=[out(1)]",  # a predecessor not below the vertex
        "[[0,1,0],[0,0,1],[0,0,0]] ['input0','input1','output'] "
        "[[0,0,1],[0,0,1],[0,0,0]] ['input0','input1','output']",  # input0 -> input1
        " ".join(["1"] * 101),
    ]
    for text in bad:
        with pytest.raises(NasxError):
            space.parse(text)
    with pytest.raises(NasxError, match="max_vertices"):
        NAGCellSpace(max_vertices=6).parse(
            "normal=[sep3(0,1) sep3(2) sep3(3) sep3(4) out(5)] reduce=[out(1)]"
        )
    assert "NAG_HIGH_ACC" not in NAGCellSpace(max_vertices=8).named_architectures()


# --- networks ------------------------------------------------------------------------------


def test_published_cells_match_the_recounted_parameters():
    # seed-nag.md §6.3 (aux head excluded): N=6, C=36; README 4.3M / 4.3M / ensemble 4.5M
    want = {
        (10, "NAG_HIGH_ACC"): 4.27,
        (100, "NAG_HIGH_ACC"): 4.35,
        (10, "NAG_ENSEMBLE_1"): 1.24,
        (10, "NAG_ENSEMBLE_2"): 1.09,
        (10, "NAG_ENSEMBLE_3"): 2.21,
    }
    for (classes, name), params in want.items():
        space = NAGCellSpace(num_classes=classes, net_channels=36, net_cells_per_stage=6)
        assert round(count_params(space.build_network(space.parse(name))), 2) == params, name


def test_cell_semantics_of_the_published_pair():
    space = tiny()
    net = space.build_network(space.parse("NAG_HIGH_ACC"))
    layout = [(c.reduction, c.pre0, c.pre1) for c in net.cells]
    assert [r for r, _, _ in layout] == [False, True, False, True, False]  # N, 2N+1 reduce
    red = net.cells[1]
    assert set(red.vertices["2"].reduce) == set()  # inputs only: the op runs at stride 2
    assert red.vertices["2"].ops["sep5"].stride == 2
    assert set(red.vertices["3"].reduce) == {"0", "1"}  # reads v2: inputs reduced, stride 1
    assert red.vertices["3"].ops["sep3"].stride == 1
    assert set(red.out_reduce) == {"0", "1"}
    x = torch.randn(2, 3, 8, 8)
    s = net.stem(x)
    assert net.cells[0](s, s).shape == (2, 6 * 4, 8, 8)  # normal output: 6 x C
    assert net.cells[1](s, net.cells[0](s, s)).shape == (2, 5 * 8, 4, 4)  # reduce: 5 x 2C
    assert type(net.cells[2].pre0).__name__ == "ReLUReduce"  # s0 at twice s1's size


def test_retrain_network_has_aux_head_dropout_and_drop_path():
    space = tiny(dropout=0.4)
    arch = space.parse("NAG_HIGH_ACC")
    net = space.build_retrain_network(arch, auxiliary=True).train()
    assert net.dropout.p == 0.4 and isinstance(net.drop_path_prob, float)
    net.drop_path_prob = 0.2
    logits, aux = net(torch.randn(2, 3, 8, 8))
    assert logits.shape == aux.shape == (2, 5)
    head = sum(p.numel() for n, p in net.named_parameters() if "auxiliary" in n) / 1e6
    assert count_params(net) - head == pytest.approx(count_params(space.build_network(arch)))
    assert net.eval()(torch.randn(2, 3, 8, 8)).shape == (2, 5)  # no aux output in eval


def test_supernet_extract_is_build_network_with_the_supernet_outputs():
    torch.manual_seed(0)
    space = tiny()
    supernet = build_supernet(space)
    rng = np.random.default_rng(0)
    supernet.train()
    with torch.no_grad():
        for _ in range(3):
            supernet(torch.randn(4, 3, 8, 8), supernet.sample_path(rng))
    supernet.eval()
    x = torch.randn(3, 3, 8, 8)
    archs = [space.sample(rng) for _ in range(4)] + [space.parse("NAG_HIGH_ACC")]
    archs += [space.parse(n) for n in ("NAG_ENSEMBLE_1", "NAG_ENSEMBLE_2")] + space.extremes()
    for arch in archs:
        net = supernet.extract(arch).eval()
        ref = space.build_network(arch).state_dict()
        got = net.state_dict()
        assert list(got) == list(ref) and all(got[k].shape == ref[k].shape for k in ref)
        with torch.no_grad():
            assert torch.allclose(net(x), supernet(x, supernet.path_of(arch)), atol=1e-5)
    # at other retraining sizes the extracted network is build_search_network's
    big = tiny(net_channels=8, net_cells_per_stage=2)
    arch = big.parse("NAG_HIGH_ACC")
    keys = list(build_supernet(big).extract(arch).state_dict())
    assert keys == list(big.build_search_network(arch).state_dict())
    assert keys != list(big.build_network(arch).state_dict())


def test_supernet_paths_follow_the_space():
    space = tiny()
    supernet = build_supernet(space)
    path = supernet.sample_path(np.random.default_rng(5))
    assert path == space.cells(space.sample(np.random.default_rng(5)))
    arch = space.parse(HIGH_ACC)
    assert supernet.path_of(arch) == space.cells(arch)
    assert isinstance(arch, Architecture) and len(arch.genes) == space.n_var
