"""DartsSpace: GeNAS/RLNAS genotypes, published sizes, check_cand, extraction, angle vector."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nasx import pipeline
from nasx.errors import NasxError
from nasx.objective.profile import count_macs, count_params
from nasx.search_space import Architecture, DartsSpace
from nasx.search_space._darts_net import CELL_GENES, EDGES
from nasx.search_space.darts import gene_index
from nasx.supernet import build_supernet
from nasx.supernet.darts import ANGLE_PATHS

# 28-gene tuples shipped by the repos (seed-genas-rlnas.md A.4 and B.8)
RLNAS_C10 = (5, 4, 6, 0, 5, 4, 0, 0, 7, 0, 7, 6, 0, 0, 5, 6, 4, 0, 5, 0, 6, 0, 4, 0, 1, 5, 0, 0)
RLNAS_IN600 = (4, 4, 0, 3, 4, 0, 4, 4, 0, 3, 0, 0, 0, 4, 4, 1, 4, 3, 0, 4, 6, 0, 0, 3, 4, 0, 0, 0)
RLNAS_IN = (4, 4, 0, 4, 4, 4, 5, 0, 0, 4, 4, 0, 0, 0, 4, 4, 5, 0, 4, 5, 0, 5, 0, 0, 0, 4, 0, 4)
GENAS = {
    "FLATNESS_CIFAR10": (3, 6, 0, 4, 4, 0, 6, 6, 0, 0, 0, 0, 4, 3)
    + (5, 2, 0, 6, 4, 0, 3, 0, 6, 0, 0, 5, 0, 7),
    "ANGLE_FLATNESS_CIFAR10": (5, 4, 4, 4, 0, 4, 5, 0, 0, 4, 0, 0, 0, 4)
    + (7, 7, 2, 3, 0, 4, 1, 0, 0, 0, 0, 0, 5, 6),
    "FLATNESS_CIFAR100": (3, 5, 0, 4, 4, 0, 0, 4, 5, 0, 4, 0, 0, 7)
    + (6, 3, 2, 0, 5, 0, 5, 0, 7, 0, 1, 1, 0, 0),
    "ANGLE_FLATNESS_CIFAR100": (3, 5, 1, 4, 0, 0, 4, 0, 4, 0, 4, 0, 0, 5)
    + (6, 4, 0, 7, 2, 1, 3, 0, 0, 0, 4, 0, 0, 7),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw) -> DartsSpace:
    return DartsSpace(
        num_classes=10,
        channels=4,
        layers=3,
        image_size=8,
        net_stem="cifar",
        net_channels=4,
        net_layers=3,
        net_image_size=None,
        **kw,
    )


def short(pairs: list[tuple[str, int]]) -> list[tuple[str, int]]:
    names = {"sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3"}
    names |= {"dil_conv_5x5": "dil5", "skip_connect": "skip", "max_pool_3x3": "max_pool"}
    names |= {"avg_pool_3x3": "avg_pool"}
    return [(names[op], k) for op, k in pairs]


# --- encoding ------------------------------------------------------------------------------


def test_gene_order_is_genas_config():
    # edge k -> j has gene k + sum(2..j-1); nodes 2..5 take 2, 3, 4, 5 inputs
    assert [gene_index(j, k) for j, k in EDGES] == list(range(14))
    assert EDGES[:5] == ((2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    assert len(ANGLE_PATHS) == 30 and len(set(ANGLE_PATHS)) == 30
    assert sum(p[-1] == 5 for p in ANGLE_PATHS) == 16


def test_published_tuples_decode_to_the_published_genotypes():
    space = DartsSpace()
    g = space.genotype(space.parse(str(RLNAS_C10)))
    assert short(g["normal"]) == [
        ("sep5", 0), ("sep3", 1), ("dil3", 0), ("sep5", 2),
        ("sep3", 0), ("dil5", 3), ("dil5", 1), ("dil3", 2),
    ]  # fmt: skip
    assert short(g["reduce"]) == [
        ("sep5", 0), ("dil3", 1), ("sep3", 0), ("sep5", 2),
        ("dil3", 1), ("sep3", 3), ("max_pool", 1), ("sep5", 2),
    ]  # fmt: skip
    g = space.genotype(space.parse(str(GENAS["FLATNESS_CIFAR10"])))
    assert short(g["normal"]) == [
        ("skip", 0), ("dil3", 1), ("sep3", 1), ("sep3", 2),
        ("dil3", 1), ("dil3", 2), ("sep3", 3), ("skip", 4),
    ]  # fmt: skip
    assert short(g["reduce"]) == [
        ("sep5", 0), ("avg_pool", 1), ("dil3", 1), ("sep3", 2),
        ("skip", 1), ("dil3", 3), ("sep5", 2), ("dil5", 4),
    ]  # fmt: skip
    g = space.genotype(space.parse(str(RLNAS_IN600)))
    assert short(g["reduce"]) == [
        ("sep3", 0), ("max_pool", 1), ("sep3", 0), ("skip", 1),
        ("sep3", 0), ("dil3", 1), ("skip", 0), ("sep3", 1),
    ]  # fmt: skip


def test_string_form_round_trips_and_reads_short_names():
    space = DartsSpace()
    for genes in (RLNAS_C10, RLNAS_IN600, *GENAS.values()):
        arch = Architecture(genes)
        text = space.to_str(arch)
        assert text.startswith("Genotype(normal=[('") and "reduce_concat=[2, 3, 4, 5])" in text
        assert space.parse(text) == arch
        assert space.parse(" ".join(map(str, genes))) == arch
    text = space.to_str(Architecture(RLNAS_C10))
    for long, abbrev in (("sep_conv_5x5", "sep5"), ("dil_conv_3x3", "dil3")):
        text = text.replace(long, abbrev)
    assert space.parse(text).genes == RLNAS_C10


def genotype_text(*node2: tuple[str, int]) -> str:
    """A genotype string whose node 2 takes ``node2``; every other node is valid."""
    rest = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * 3
    normal = ", ".join(f"({op!r}, {k})" for op, k in [*node2, *rest])
    reduce = ", ".join(f"({op!r}, {k})" for op, k in [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * 4)
    return f"Genotype(normal=[{normal}], normal_concat=[2, 3, 4, 5], reduce=[{reduce}])"


def test_genotype_helper_builds_a_valid_string():
    assert DartsSpace().parse(genotype_text(("skip_connect", 1), ("max_pool_3x3", 0))).genes[
        :2
    ] == (
        1,
        3,
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Genotype(normal=[('sep_conv_3x3', 0)], reduce=[])", "DARTS genotype"),
        ("(1, 2, 3)", "28 op indices"),
        (str((9,) + RLNAS_C10[1:]), "0..7"),
        (str((0,) * 28), "two non-none inputs"),
        (genotype_text(("sep_conv_3x3", 0), ("sep_conv_3x3", 0)), "two distinct inputs"),
        (genotype_text(("sep_conv_3x3", 0), ("sep_conv_3x3", 2)), "below 2"),
        (genotype_text(("conv_7x7", 0), ("sep_conv_3x3", 1)), "conv_7x7"),
        (genotype_text(("none", 0), ("sep_conv_3x3", 1)), "through one of"),
    ],
)
def test_bad_strings_name_the_expected_form(text: str, needle: str):
    with pytest.raises(NasxError, match="cannot parse architecture") as info:
        DartsSpace().parse(text)
    assert needle in str(info.value)


def _two_inputs_per_node(genes: tuple[int, ...]) -> bool:
    for start in (0, CELL_GENES):
        for node in range(2, 6):
            live = [genes[start + gene_index(node, k)] != 0 for k in range(node)]
            if sum(live) != 2:
                return False
    return True


def test_check_cand_leaves_two_inputs_per_node_and_keeps_valid_genes():
    space = DartsSpace()
    rng = np.random.default_rng(0)
    for _ in range(300):
        raw = rng.integers(0, 8, size=28)
        arch = space.decode(raw)
        assert _two_inputs_per_node(arch.genes)
        # repair only touches the genes it must: surviving non-none genes keep their op
        assert all(g == 0 or g == r or r == 0 for g, r in zip(arch.genes, raw, strict=True))
        assert space.decode(raw) == arch  # decoding is a pure function of the genes
        assert space.decode(arch.genes) == arch  # valid genes are left alone
        assert _two_inputs_per_node(space.sample(rng).genes)
    a, b = space.sample(np.random.default_rng(3)), space.sample(np.random.default_rng(3))
    assert a == b


def test_mutation_of_the_reduction_cell_is_a_switch():
    rng = np.random.default_rng(0)
    parent = Architecture(RLNAS_C10)
    original = DartsSpace(mutate_reduction=False)
    kids = [original.mutate(parent, rng, 0.5) for _ in range(50)]
    # GeNAS/RLNAS: the reduction half of a valid parent never changes
    assert all(k.genes[CELL_GENES:] == parent.genes[CELL_GENES:] for k in kids)
    assert any(k.genes[:CELL_GENES] != parent.genes[:CELL_GENES] for k in kids)
    fixed = DartsSpace()
    kids = [fixed.mutate(parent, rng, 0.5) for _ in range(50)]
    assert sum(k.genes[CELL_GENES:] != parent.genes[CELL_GENES:] for k in kids) > 25
    assert all(_two_inputs_per_node(k.genes) for k in kids)


# --- published sizes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("genes", "channels", "mflops", "mparams"),
    [
        (RLNAS_C10, 48, 629.1, 5.675),
        (RLNAS_C10, 46, 580.6, 5.258),
        (RLNAS_IN600, 48, 596.8, 5.464),
        (RLNAS_IN, 48, 723.9, 6.62),
        (GENAS["FLATNESS_CIFAR10"], 52, 610.9, 5.564),
        (GENAS["ANGLE_FLATNESS_CIFAR10"], 44, 593.6, 5.344),
        (GENAS["FLATNESS_CIFAR100"], 46, 580.2, 5.195),
        (GENAS["ANGLE_FLATNESS_CIFAR100"], 48, 603.2, 5.414),
    ],
    ids=["rlnas-c10-48", "rlnas-c10-46", "rlnas-in600", "rlnas-in", *GENAS],
)
def test_imagenet_network_has_the_published_size(genes, channels, mflops, mparams):
    space = DartsSpace(num_classes=1000, net_channels=channels)
    net = space.build_network(Architecture(genes))
    params = count_params(net)
    assert params == pytest.approx(mparams, abs=0.5 * 10 ** -(len(str(mparams)) - 2))
    macs = count_macs(net, space.network_input_shape)
    # thop (the repos' counter) prices the classifier at (2 in - 1) out instead of in * out
    c_in = net.classifier.in_features
    assert macs + (c_in - 1) * 1000 / 1e6 == pytest.approx(mflops, abs=0.05)
    assert space.network_input_shape == (3, 224, 224)


def test_cifar_network_is_darts_size():
    # the DARTS (second order) cell on DARTS's CIFAR evaluation network: 3.3M in the paper
    darts_v2 = (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
        "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[2, 3, 4, 5])"
    )
    space = DartsSpace(net_stem="cifar", net_channels=36, net_layers=20, net_image_size=None)
    net = space.build_network(space.parse(darts_v2))
    # DARTS's train.py logs "param size = 3.349342MB" for it (auxiliary head excluded)
    assert count_params(net) == pytest.approx(3.349342, abs=1e-6)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


# --- supernet, extraction, angle -----------------------------------------------------------


def test_extracted_network_reproduces_the_supernet_path():
    space = tiny()
    supernet = build_supernet(space)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial BN statistics and affine terms
        for name, buf in supernet.named_buffers():
            if name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=gen) * 0.1)
        for name, p in supernet.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    supernet.eval()
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    x = torch.randn(3, 3, 8, 8, generator=gen)
    rng = np.random.default_rng(0)
    for arch in [space.sample(rng) for _ in range(4)] + space.extremes():
        net = supernet.extract(arch).eval()
        with torch.no_grad():
            assert torch.allclose(net(x), supernet(x, supernet.path_of(arch)), atol=1e-5)
        with torch.no_grad():  # the copy does not alias the supernet
            for p in net.parameters():
                p.add_(1.0)
    assert all(torch.equal(v, before[k]) for k, v in supernet.state_dict().items())


def test_training_paths_are_valid_candidates_and_reproducible():
    space = tiny()
    a = [build_supernet(space).sample_path(np.random.default_rng([0, s])) for s in range(20)]
    b = [build_supernet(space).sample_path(np.random.default_rng([0, s])) for s in range(20)]
    assert a == b and len(set(a)) == 20
    assert all(_two_inputs_per_node(p) for p in a)
    supernet = build_supernet(space)
    out = supernet(torch.randn(2, 3, 8, 8), a[0])
    assert out.shape == (2, 10)


def test_angle_vector_has_the_hand_counted_length():
    # sep_conv_3x3 on inputs 0 and 1 of every node: only the 8 one-edge paths survive
    space = tiny()
    half = [4 if k < 2 else 0 for _, k in EDGES]
    arch = Architecture(tuple(half + half))
    state = build_supernet(space).state_dict()

    def sep(c: int) -> int:  # dw1, pw1, dw2, pw2, bn1 w/b, bn2 w/b
        return 9 * c + c * c + 9 * c + c * c + 4 * c

    paths = 8 * (sep(4) + sep(8) + sep(16))  # cells 0 (normal), 1 and 2 (reduction)
    stem = 3 * 12 * 9 + 2 * 12
    pre = (12 * 4 + 8) * 2 + (12 * 8 + 16) + (16 * 8 + 16)  # ReLUConvBN 1x1 convs
    pre += 2 * 16 * 8 + 2 * 16 + (32 * 16 + 32)  # cell 2: factorized reduce + ReLUConvBN
    classifier = 64 * 10  # weight only, no bias (GeNAS CIFAR code)
    v = build_supernet(space).path_weights(state, arch)
    assert v is not None and v.numel() == paths + stem + pre + classifier == 12492


def test_angle_vector_constants_and_the_bias_slip_switch():
    space, slip = tiny(), tiny(angle_bias_slip=True)
    # skip on (0 -> 2), dil3 on (1 -> 2); nodes 3..5 use avg pool on inputs 0, 1
    half = [3, 6] + [2 if k < 2 else 0 for _, k in EDGES[2:]]
    arch = Architecture(tuple(half + half))
    init = build_supernet(space).state_dict()
    moved = {k: v.clone() for k, v in init.items()}
    # change only the dil conv's BN bias in the normal cell (cell 0, edge 1 -> 2, op 6)
    moved["cells.0.edges.1.6.op.3.bias"] += 0.5
    v0, v1 = (
        build_supernet(space).path_weights(init, arch),
        build_supernet(space).path_weights(moved, arch),
    )
    assert v0 is not None and v1 is not None
    assert not torch.equal(v0, v1)  # the intended vector sees the BN bias
    s0, s1 = (
        build_supernet(slip).path_weights(init, arch),
        build_supernet(slip).path_weights(moved, arch),
    )
    assert s0 is not None and s1 is not None
    assert torch.equal(s0, s1)  # the original reads the weight twice and misses it
    assert s0.numel() == v0.numel()
    # the supernet's avg pool on edge 0 -> 3 is followed by a BN over cell 0's C = 4 channels
    w = init["cells.0.edges.3.2.bn.weight"]
    assert w.shape == (4,)
    # a stride-1 skip contributes the constant eye(C) (GeNAS), C = 4 in cell 0
    supernet = build_supernet(space)
    (skip,) = supernet._op_segments(init, "cells.0.edges.0.3.", "skip_connect", stride2=False)
    assert torch.equal(skip, torch.eye(4))
    # every avg-pool edge contributes a constant block of 1/9
    assert (v0 == 1.0 / 9.0).sum() >= 9 * 4


def test_angle_metric_on_a_darts_run(compose_cfg, tmp_path: Path):
    cfg = compose_cfg(
        "experiment=smoke",
        "space=darts_cpu",
        "space.channels=4",
        "space.layers=3",
        "space.image_size=8",
        "space.net_channels=4",
        "space.net_layers=3",
        "metric=angle",
        "search=evolution",
        "search.population=4",
        "search.top_k=2",
        "search.n_mutation=2",
        "search.n_crossover=2",
        "search.generations=2",
        "search.n_evals=8",
    )
    pipeline.run(cfg, tmp_path)
    records = [
        json.loads(line)
        for line in (tmp_path / "search" / "evaluations.jsonl").read_text().splitlines()
    ]
    assert len(records) == 8 and not any(r.get("failed") for r in records)
    space = DartsSpace()
    for r in records:
        assert 0.0 < r["metric"]["angle"] < np.pi
        assert _two_inputs_per_node(space.parse(r["arch"]).genes)
    chosen = (tmp_path / "final" / "front_00" / "arch.txt").read_text().strip()
    assert chosen.startswith("Genotype(")
    assert (tmp_path / "final" / "front_00" / "weights.pt").is_file()


@pytest.mark.parametrize("step_first", [False, True])
def test_supernet_schedule_and_the_step_first_quirk(step_first: bool):
    from functools import partial

    from nasx.supernet.recipe import TrainingRecipe
    from nasx.supernet.schedules import step_first_cosine

    sched = step_first_cosine if step_first else torch.optim.lr_scheduler.CosineAnnealingLR
    recipe = TrainingRecipe(
        5, partial(torch.optim.SGD, lr=0.025), partial(sched, T_max=5, eta_min=0.001)
    )
    conf = recipe.configure_optimizers(torch.nn.Linear(2, 2).parameters(), steps_per_epoch=10)
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    shift = 1 if step_first else 0
    # GeNAS train.py:113-114: epoch e trains at 0.001 + 0.024 (1 + cos(pi (e + 1) / E)) / 2
    want = [0.001 + 0.024 * (1 + np.cos(np.pi * (e + shift) / 5)) / 2 for e in range(5)]
    assert seen == pytest.approx(want, rel=1e-9)
    assert (seen[0] == 0.025) != step_first


def test_proxies_score_the_search_size_network_not_the_cost_network():
    import nasx.metric as M
    from nasx.data import FakeData

    # the cost network is the 224-px ImageNet form; proxies see 8-px search batches
    space = DartsSpace(num_classes=4, channels=4, layers=3, image_size=8, net_channels=8)
    arch = space.sample(np.random.default_rng(0))
    search_net = space.build_search_network(arch)
    assert count_params(search_net) < count_params(space.build_network(arch))
    assert search_net.stem_kind == "cifar" and len(search_net.cells) == 3
    data = FakeData(num_train=32, num_test=8, num_classes=4)
    data.setup(8, 3)
    ctx = M.MetricContext(space=space, supernet=None, data=data, runner=M.TorchRunner())
    metric = M.NwotMetric(batch_size=8)
    net = metric.network(arch, ctx, seed=0)
    assert sum(p.numel() for p in net.parameters()) == sum(
        p.numel() for p in search_net.parameters()
    )
    score = metric(arch, ctx, torch.Generator().manual_seed(0))["nwot"]
    assert np.isfinite(score)


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_latency_keys_name_layers_of_the_right_shape(stem: str, tmp_path: Path):
    from nasx.objective import LatencyObjective, measure_lut
    from nasx.objective.lut import space_latency_keys
    from nasx.search_space.base import parse_latency_key

    size = 8 if stem == "cifar" else 64
    space = DartsSpace(
        num_classes=5, channels=4, layers=3, image_size=8,
        net_stem=stem, net_channels=4, net_layers=4, net_image_size=size,
    )  # fmt: skip
    arch = space.sample(np.random.default_rng(1))
    keys = space.latency_keys(arch)
    # stem(s), 2 preprocessing layers + 8 edges per cell, pooling, classifier
    assert len(keys) == (1 if stem == "cifar" else 2) + 4 * (2 + 8) + 2
    every = space_latency_keys(space, n_samples=0)  # the extremes alone cover every layer
    rng = np.random.default_rng(2)
    assert all(set(space.latency_keys(space.sample(rng))) <= set(every) for _ in range(30))
    for key in every:
        module, shape = space.latency_layer(key)
        _, _, out = parse_latency_key(key)
        with torch.no_grad():
            y = module.eval()(torch.zeros(shape))
        assert tuple(y.shape[1:]) == out, key
    # the last cell's output feeds gap and classifier: the keys chain like the network does
    net = space.build_network(arch).eval()
    with torch.no_grad():
        logits = net(torch.zeros(1, *space.network_input_shape))
    assert parse_latency_key(keys[-1])[1:] == ((net.classifier.in_features,), (logits.shape[1],))
    lut = measure_lut(space, tmp_path / "lut.yaml", repeats=1, number=1, n_samples=0)
    total = LatencyObjective(device=None, lut=str(tmp_path / "lut.yaml"))(arch, space)
    assert total == pytest.approx(sum(lut[k]["mean"] for k in keys))


def test_retraining_network_has_darts_auxiliary_head_and_drop_path():
    space = DartsSpace(
        num_classes=10, net_stem="cifar", net_channels=8, net_layers=8, net_image_size=32
    )
    arch = space.parse("DARTS_V2")
    plain = space.build_network(arch)
    torch.manual_seed(0)
    net = space.build_retrain_network(arch, auxiliary=True)
    # the auxiliary head is an extra: the costed network's parameters are all in it
    aux_params = sum(p.numel() for p in net.auxiliary_head.parameters())
    assert sum(p.numel() for p in net.parameters()) == (
        sum(p.numel() for p in plain.parameters()) + aux_params
    )
    x = torch.randn(4, 3, 32, 32)
    net.train()
    logits, aux = net(x)
    assert logits.shape == aux.shape == (4, 10)
    net.eval()
    assert net(x).shape == (4, 10)  # evaluation returns the logits alone
    # drop path: identical in eval mode, random per sample while training
    net.drop_path_prob = 0.5
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
        net.train()
        torch.manual_seed(1)
        a = net(x)[0]
        torch.manual_seed(2)
        b = net(x)[0]
    assert not torch.equal(a, b)
