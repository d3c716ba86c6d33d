"""NB201Space: the packaged table, string form, genetic operators, supernet/extraction, costs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasx.errors import NasxError
from nasx.objective import FlopsObjective, ParamsObjective
from nasx.search_space import Architecture, NB201Space
from nasx.search_space._nb201_net import EDGES, OPS
from nasx.search_space._nb201_table import load_table
from nasx.supernet import build_supernet

ALL_CONV3 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_SKIP = (
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|"
    "+|skip_connect~0|skip_connect~1|skip_connect~2|"
)
HINT = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_space(**kw) -> NB201Space:
    return NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8, **kw)


# --- the table and the string form ---------------------------------------------------------


def test_every_table_row_parses_round_trips_and_indexes_to_its_row():
    space = NB201Space()
    index, rows = load_table()
    assert len(index) == len(rows) == 15625
    assert sorted(index.values()) == list(range(15625))
    genes_seen = set()
    for text, row in index.items():
        arch = space.parse(text)
        assert space.to_str(arch) == text
        assert space.index(arch) == row
        genes_seen.add(arch.genes)
    # the 15,625 strings are the 5^6 distinct cells
    assert len(genes_seen) == 5**6


def test_table_row_order_and_known_optimum():
    space = NB201Space()
    _, rows = load_table()
    acc = np.array([r["cifar10_test_acc_200ep"] for r in rows])
    assert int(acc.argmax()) == 6111
    assert acc[6111] == pytest.approx(94.37, abs=0.01)
    # README: index 0 is this cell
    first = (
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
        "+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    )
    assert space.index(space.parse(first)) == 0
    inv = {v: k for k, v in load_table()[0].items()}
    gt = space.ground_truth(space.parse(inv[6111]))
    assert gt["cifar10_test_acc_200ep"] == pytest.approx(94.373, abs=1e-3)
    assert "arch_str" not in gt and "nb201_index" not in gt


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # wrong op name
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",  # wrong ~k
        "|none~0|+|none~0|none~0|+|none~0|none~1|none~2|",  # wrong ~k in node 2
        "|none|+|none~0|none~1|+|none~0|none~1|none~2|",  # missing ~k
        "|none~0|+|none~0|none~1|",  # two nodes
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|",  # four nodes
        "|none~0|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",  # wrong op count
        "|none~0|+|none~0|+|none~0|none~1|none~2|",  # wrong op count
        "none~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # missing leading bar
        "|none~0||+|none~0|none~1|+|none~0|none~1|none~2|",  # doubled bar
        "||none~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # doubled bar
        "|none~0| +|none~0|none~1|+|none~0|none~1|none~2|",  # space inside
    ],
)
def test_malformed_strings_raise_with_expected_form(text):
    with pytest.raises(NasxError) as err:
        tiny_space().parse(text)
    msg = str(err.value)
    assert HINT in msg
    for op in OPS:
        assert op in msg


def test_parse_tolerates_surrounding_whitespace():
    space = tiny_space()
    assert space.parse(f"  {ALL_CONV3}\n") == space.parse(ALL_CONV3)


def test_decode_encode_round_trip_and_clipping():
    space = tiny_space()
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = space.sample(rng)
        enc = a.encode()
        assert enc.dtype == np.int64 and enc.shape == (6,)
        assert space.decode(enc) == a
    # pymoo may hand over floats and out-of-bound values: rounded, then clipped
    assert space.decode([-3, 0.6, 1.4, 2.5, 7, 4]).genes == (0, 1, 1, 2, 4, 4)


# --- genetic operators ---------------------------------------------------------------------


def test_sample_is_uniform_enough_and_in_bounds():
    space = tiny_space()
    rng = np.random.default_rng(1)
    genes = np.array([space.sample(rng).genes for _ in range(2000)])
    assert genes.min() == 0 and genes.max() == 4
    counts = np.bincount(genes.ravel(), minlength=5) / genes.size
    assert np.all(np.abs(counts - 0.2) < 0.03)


def test_mutation_without_none_never_introduces_none():
    space = tiny_space(mutate_to_none=False)
    rng = np.random.default_rng(2)
    changed = 0
    for _ in range(500):
        parent = space.sample(rng)
        child = space.mutate(parent, rng, prob=0.8)
        for p, c in zip(parent.genes, child.genes, strict=True):
            if c == 0:
                assert p == 0, "mutation drew op none with mutate_to_none=False"
        changed += child != parent
    assert changed > 400  # the mutation does something at p=0.8


def test_mutation_with_none_can_draw_none():
    space = tiny_space(mutate_to_none=True)
    rng = np.random.default_rng(3)
    parent = space.parse(ALL_CONV3)
    children = [space.mutate(parent, rng, prob=1.0) for _ in range(50)]
    assert any(0 in c.genes for c in children)


def test_mutation_with_zero_probability_is_identity():
    space = tiny_space()
    rng = np.random.default_rng(4)
    for _ in range(100):
        a = space.sample(rng)
        assert space.mutate(a, rng, prob=0.0) == a


def test_crossover_genes_come_from_the_parents():
    space = tiny_space()
    rng = np.random.default_rng(5)
    from_a = from_b = 0
    for _ in range(300):
        a, b = space.sample(rng), space.sample(rng)
        child = space.crossover(a, b, rng)
        assert isinstance(child, Architecture)
        for ga, gb, gc in zip(a.genes, b.genes, child.genes, strict=True):
            assert gc in (ga, gb)
            if ga != gb:
                from_a += gc == ga
                from_b += gc == gb
    # uniform crossover: both parents contribute about equally
    assert 0.4 < from_a / (from_a + from_b) < 0.6


def test_sample_path_shape_and_no_dead_node():
    for n in (1, 2, 5):
        space = NB201Space(num_classes=4, channels=4, cells_per_stage=n, image_size=8)
        rng = np.random.default_rng(n)
        supernet = build_supernet(space)
        for _ in range(200):
            path = supernet.sample_path(rng)
            assert len(path) == 3 * n
            for cell in path:
                assert len(cell) == 6 and all(0 <= k < len(OPS) for k in cell)
                for node in (1, 2, 3):
                    incoming = [cell[e] for e, (i, _) in enumerate(EDGES) if i == node]
                    assert any(incoming), f"node {node} has only none inputs in {cell}"


def test_sample_path_varies_across_cells():
    space = NB201Space(num_classes=4, channels=4, cells_per_stage=5, image_size=8)
    path = build_supernet(space).sample_path(np.random.default_rng(0))
    assert len(set(path)) > 1  # RLNAS draws each cell independently


def test_invalid_space_arguments():
    with pytest.raises(ValueError, match="channels"):
        NB201Space(channels=0)
    with pytest.raises(ValueError, match="cells_per_stage"):
        NB201Space(cells_per_stage=0)


# --- supernet and extraction ---------------------------------------------------------------


def _max_diff_extracted(space, supernet, archs, x, train_mode=False):
    diffs = []
    for arch in archs:
        net = supernet.extract(arch)
        supernet.train(train_mode)
        net.train(train_mode)
        with torch.no_grad():
            ref = supernet(x, supernet.path_of(arch))
            out = net(x)
        assert out.shape == ref.shape == (len(x), space.num_classes)
        diffs.append(float((out - ref).abs().max()))
    return max(diffs)


def _archs(space, n, seed):
    rng = np.random.default_rng(seed)
    fixed = [space.parse(t) for t in (ALL_CONV3, ALL_NONE, ALL_SKIP)]
    return fixed + [space.sample(rng) for _ in range(n)]


def test_extraction_equals_supernet_at_init():
    torch.manual_seed(0)
    space = tiny_space()
    supernet = build_supernet(space)
    x = torch.randn(6, 3, 8, 8)
    assert _max_diff_extracted(space, supernet, _archs(space, 12, 0), x) < 1e-5


def test_extraction_equals_supernet_after_training():
    torch.manual_seed(1)
    space = tiny_space()
    supernet = build_supernet(space)
    init = {k: v.clone() for k, v in supernet.state_dict().items()}
    opt = torch.optim.SGD(supernet.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    supernet.train()
    for _ in range(8):
        x = torch.randn(16, 3, 8, 8)
        y = torch.randint(0, 4, (16,))
        loss = torch.nn.functional.cross_entropy(supernet(x, supernet.sample_path(rng)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # the weights and the BN running statistics are no longer the initial ones
    state = supernet.state_dict()
    assert any("running_mean" in k and not torch.equal(v, init[k]) for k, v in state.items())
    assert not torch.equal(state["classifier.weight"], init["classifier.weight"])
    x = torch.randn(6, 3, 8, 8) * 2 + 0.5
    archs = _archs(space, 12, 1)
    assert _max_diff_extracted(space, supernet, archs, x) < 1e-5
    assert _max_diff_extracted(space, supernet, archs, x, train_mode=True) < 1e-5


def test_extraction_copies_weights():
    space = tiny_space()
    supernet = build_supernet(space)
    arch = space.parse(ALL_CONV3)
    net = supernet.extract(arch)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    for k, v in supernet.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed through the extracted network"


# --- costs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "params_m", "mflops"),
    [(ALL_CONV3, 1.531546, 220.11968), (ALL_NONE, 0.073306, 7.78304)],
)
def test_params_and_flops_match_nas_bench_201(text, params_m, mflops):
    space = NB201Space(num_classes=10, channels=16, cells_per_stage=5, image_size=32)
    arch = space.parse(text)
    assert ParamsObjective()(arch, space) == pytest.approx(params_m, rel=1e-4)
    assert FlopsObjective()(arch, space) == pytest.approx(mflops, rel=1e-4)


def test_costs_order_ops_sensibly():
    space = tiny_space()
    params = ParamsObjective()
    p = {t: params(space.parse(t), space) for t in (ALL_CONV3, ALL_NONE, ALL_SKIP)}
    assert p[ALL_NONE] == p[ALL_SKIP] < p[ALL_CONV3]
    one_by_one = ALL_CONV3.replace("nor_conv_3x3", "nor_conv_1x1")
    flops = FlopsObjective()
    f_conv1 = flops(space.parse(one_by_one), space)
    assert flops(space.parse(ALL_NONE), space) < f_conv1 < flops(space.parse(ALL_CONV3), space)


# --- the angle vector ----------------------------------------------------------------------


def _fixed_segments(state):
    keys = ["stem.0.weight", "stem.1.weight", "stem.1.bias"]
    cells = sorted({int(k.split(".")[1]) for k in state if ".conv_a." in k})
    for c in cells:
        p = f"cells.{c}."
        keys += [
            p + s
            for s in (
                "conv_a.1.weight",
                "conv_a.2.weight",
                "conv_a.2.bias",
                "conv_b.1.weight",
                "conv_b.2.weight",
                "conv_b.2.bias",
                "downsample.1.weight",
            )
        ]
    keys += ["lastact.0.weight", "lastact.0.bias", "classifier.weight", "classifier.bias"]
    return [state[k].reshape(-1) for k in keys]


def _search_cells(state):
    return sorted({int(k.split(".")[1]) for k in state if ".edges." in k})


def _same_multiset(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(torch.sort(a).values, torch.sort(b).values)


NO_PATH = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"


@pytest.mark.parametrize("text", [ALL_NONE, NO_PATH])
def test_angle_vector_is_none_without_a_path(text):
    space = tiny_space()
    state = build_supernet(space).state_dict()
    assert build_supernet(space).path_weights(state, space.parse(text)) is None


@pytest.mark.parametrize(
    "text",
    [
        ALL_CONV3,
        ALL_SKIP,
        # path 0 -> 2 -> 3 survives (edges 2<-0 and 3<-2 are convs)
        "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|nor_conv_3x3~2|",
        # only the direct edge 3<-0
        "|none~0|+|none~0|none~1|+|avg_pool_3x3~0|none~1|none~2|",
    ],
)
def test_angle_vector_exists_with_a_path(text):
    space = tiny_space()
    state = build_supernet(space).state_dict()
    v = build_supernet(space).path_weights(state, space.parse(text))
    assert v is not None and v.ndim == 1 and torch.isfinite(v).all()


def test_angle_vector_skip_only_has_just_the_fixed_segments():
    space = tiny_space()
    state = build_supernet(space).state_dict()
    expected = torch.cat(_fixed_segments(state)).float()
    for text in (ALL_SKIP, "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"):
        v = build_supernet(space).path_weights(state, space.parse(text))
        assert _same_multiset(v, expected)


def test_angle_vector_single_conv_path_by_hand():
    space = tiny_space()
    state = build_supernet(space).state_dict()
    arch = space.parse("|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|")
    conv = [state[f"cells.{c}.edges.3<-0.2.1.weight"].reshape(-1) for c in _search_cells(state)]
    expected = torch.cat(_fixed_segments(state) + conv).float()
    assert _same_multiset(build_supernet(space).path_weights(state, arch), expected)


def test_angle_vector_repeats_shared_edges_per_path():
    space = tiny_space()
    state = build_supernet(space).state_dict()
    # paths 0->1->3 and 0->1->2->3 both live; 0->3 and 0->2->3 are cut
    arch = space.parse(
        "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    segs = _fixed_segments(state)
    for path in ((0, 1, 2, 3), (0, 1, 3)):
        for c in _search_cells(state):
            for a, b in zip(path, path[1:], strict=False):
                k = arch.genes[EDGES.index((b, a))]
                segs.append(state[f"cells.{c}.edges.{b}<-{a}.{k}.1.weight"].reshape(-1))
    assert _same_multiset(build_supernet(space).path_weights(state, arch), torch.cat(segs).float())


def test_angle_vector_avg_pool_is_a_constant_c_out_by_3_by_3_block():
    space = tiny_space()
    state = build_supernet(space).state_dict()
    arch = space.parse("|none~0|+|none~0|none~1|+|avg_pool_3x3~0|none~1|none~2|")
    pools = []
    for c in _search_cells(state):
        c_out = state[f"cells.{c}.edges.3<-0.3.1.weight"].shape[0]
        pools.append(torch.full((c_out * 9,), 1.0 / 9.0))
    expected = torch.cat(_fixed_segments(state) + pools).float()
    assert _same_multiset(build_supernet(space).path_weights(state, arch), expected)


def test_rlnas_six_integer_tuple_parses_to_the_same_cell():
    # RLNAS stores NB201 candidates as op indices in edge order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
    space = tiny_space()
    expected = (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
    )
    for text in ("(3, 3, 0, 1, 2, 4)", "[3,3,0,1,2,4]", "3 3 0 1 2 4", " (3, 3, 0, 1, 2, 4)\n"):
        assert space.to_str(space.parse(text)) == expected
    for bad in ("(3, 3, 0, 1, 2)", "(3, 3, 0, 1, 2, 5)", "(3, 3, 0, 1, 2, x)"):
        with pytest.raises(NasxError, match="RLNAS's tuple of 6 op indices"):
            space.parse(bad)
