"""RLNAS's MobileNet space: encoding, published architecture, FLOPs lookup table, LUT cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from nasx.errors import NasxError
from nasx.objective.flops_lut import FlopsLUTObjective
from nasx.objective.profile import count_macs, count_params
from nasx.search_space import MobileNetSpace, NB201Space
from nasx.search_space.base import Architecture

pytestmark = pytest.mark.usefixtures("one_thread")

CONF = Path(__file__).resolve().parents[2] / "conf"
MODEL_ID = "2 0 -1 2 2 0 2 4 0 4 4 2 4 2 4 2 0 0 0 2 2"
FIXED = (0, 4, 8, 12, 16, 20)
# RLNAS evolution_search/config.py backbone_info rows 1..21: (inp, oup, img_h, img_w, stride)
BACKBONE_INFO = [
    (24, 32, 112, 112, 2),
    (32, 32, 56, 56, 1),
    (32, 32, 56, 56, 1),
    (32, 32, 56, 56, 1),
    (32, 56, 56, 56, 2),
    (56, 56, 28, 28, 1),
    (56, 56, 28, 28, 1),
    (56, 56, 28, 28, 1),
    (56, 112, 28, 28, 2),
    (112, 112, 14, 14, 1),
    (112, 112, 14, 14, 1),
    (112, 112, 14, 14, 1),
    (112, 128, 14, 14, 1),
    (128, 128, 14, 14, 1),
    (128, 128, 14, 14, 1),
    (128, 128, 14, 14, 1),
    (128, 256, 14, 14, 2),
    (256, 256, 7, 7, 1),
    (256, 256, 7, 7, 1),
    (256, 256, 7, 7, 1),
    (256, 432, 7, 7, 1),
]


@pytest.fixture(scope="module")
def paper() -> MobileNetSpace:
    return MobileNetSpace()


@pytest.fixture(scope="module")
def cpu() -> MobileNetSpace:
    return MobileNetSpace(num_classes=10, image_size=32, width_mult=0.25)


# --- encoding --------------------------------------------------------------------------------
def test_bounds_forbid_skip_in_fixed_layers(paper: MobileNetSpace) -> None:
    assert paper.n_var == 21
    assert [i for i in range(21) if paper.lower[i] == 1] == list(FIXED)
    assert set(paper.lower) == {0, 1} and set(paper.upper) == {6}
    for i in range(21):
        expected = list(range(1 if i in FIXED else 0, 7))
        assert list(paper.mutation_choices(i)) == expected


def test_published_model_id_round_trip(paper: MobileNetSpace) -> None:
    arch = paper.parse(MODEL_ID)
    # gene = reference op + 1: skip (-1) is gene 0
    assert arch.genes == (3, 1, 0, 3, 3, 1, 3, 5, 1, 5, 5, 3, 5, 3, 5, 3, 1, 1, 1, 3, 3)
    assert paper.to_str(arch) == MODEL_ID
    assert paper.ops(arch) == tuple(int(t) for t in MODEL_ID.split())
    assert paper.parse("RLNAS_MOBILENET") == arch
    assert paper.parse(" RLNAS_MOBILENET ") == arch
    bracketed = "[" + ", ".join(MODEL_ID.split()) + "]"
    assert paper.parse(bracketed) == arch
    assert paper.parse("(" + ",".join(MODEL_ID.split()) + ")") == arch
    assert paper.decode(arch.encode()) == arch


def test_round_trip_of_samples(paper: MobileNetSpace) -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = paper.sample(rng)
        assert paper.parse(paper.to_str(arch)) == arch
        assert paper.decode(arch.encode()) == arch


@pytest.mark.parametrize(
    "text",
    [
        "2 0 -1 2",  # too few
        MODEL_ID + " 0",  # too many
        MODEL_ID.replace("2 0 -1", "2 0 6", 1),  # op out of range
        MODEL_ID.replace("2 0 -1", "2 0 -2", 1),
        MODEL_ID.replace("2 0 -1", "2 0 x", 1),
        "-1" + MODEL_ID[1:],  # skip in layer 0
        " ".join(["1"] * 4 + ["-1"] + ["1"] * 16),  # skip in layer 4
        "",
        "RLNAS",
    ],
)
def test_invalid_text_raises(paper: MobileNetSpace, text: str) -> None:
    with pytest.raises(NasxError, match="model_id"):
        paper.parse(text)


def test_operators_never_skip_fixed_layers(paper: MobileNetSpace) -> None:
    rng = np.random.default_rng(1)
    seen = np.zeros((21, 7), dtype=int)
    archs = [paper.sample(rng) for _ in range(300)]
    for a in archs:
        for i, g in enumerate(a.genes):
            seen[i, g] += 1
    for i in range(21):
        if i in FIXED:
            assert seen[i, 0] == 0 and (seen[i, 1:] > 0).all()
        else:
            assert (seen[i] > 0).all()  # skip included
    for a, b in zip(archs[:-1], archs[1:], strict=True):
        for child in (paper.mutate(a, rng, 0.5), paper.crossover(a, b, rng)):
            assert all(child.genes[i] >= 1 for i in FIXED)
    # decoding clips a skip in a fixed layer to k3e3
    assert paper.decode(np.zeros(21)).genes == tuple(1 if i in FIXED else 0 for i in range(21))


def test_extremes(paper: MobileNetSpace) -> None:
    small, large = paper.extremes()
    assert paper.to_str(small) == " ".join("0" if i in FIXED else "-1" for i in range(21))
    assert paper.to_str(large) == " ".join(["5"] * 21)
    assert paper.lut_flops(small) < paper.lut_flops(paper.parse(MODEL_ID)) < paper.lut_flops(large)


def test_network_shape_and_invalid_ops(cpu: MobileNetSpace) -> None:
    import torch

    net = cpu.build_network(cpu.parse(MODEL_ID))
    assert net(torch.randn(2, *cpu.input_shape)).shape == (2, 10)
    assert cpu.describe()["space"] == "mobilenet"
    with pytest.raises(NasxError):
        cpu.parse("-1 " * 21)
    from nasx.search_space._mobilenet_net import MobileNetNetwork

    with pytest.raises(ValueError, match="cannot be skipped"):
        MobileNetNetwork([-1] * 21)


# --- FLOPs lookup table (reference B.5) ------------------------------------------------------
def test_pre_and_post_closed_forms(paper: MobileNetSpace) -> None:
    table = paper.flops_table()
    assert paper.pre_key() == (3, 40, 224, 224, 2)
    assert paper.post_key() == (432, 1728, 7, 7, 1)
    # stem 3*9*40*112^2 + fixed MBConv e1 (dw 9*40*112^2 + pw 40*24*112^2)
    assert 3 * 9 * 40 * 112**2 + 9 * 40 * 112**2 + 40 * 24 * 112**2 == 30_105_600
    assert table["PreProcessing"] == {(3, 40, 224, 224, 2): 30_105_600}
    # conv1x1 432*1728*7^2 + Linear (2*1728 - 1)*1000
    assert 432 * 1728 * 49 + (2 * 1728 - 1) * 1000 == 40_033_304
    assert table["PostProcessing"] == {(432, 1728, 7, 7, 1): 40_033_304}


def test_block_rows_follow_the_closed_form(paper: MobileNetSpace) -> None:
    table = paper.flops_table()
    assert paper.layer_keys() == BACKBONE_INFO
    keys = [f"mobilenet_{k}x{k}_ratio_{e}" for k in (3, 5, 7) for e in (3, 6)]
    assert sorted(table) == sorted(["PreProcessing", "PostProcessing", *keys])
    for key in keys:
        k, e = int(key[10]), int(key[-1])
        assert set(table[key]) == set(BACKBONE_INFO)  # 11 distinct rows
        for inp, oup, h, w, s in BACKBONE_INFO:
            ho = h // s
            expect = inp * (e * inp) * h * w + k * k * (e * inp) * ho * ho + (e * inp) * oup * ho**2
            assert table[key][(inp, oup, h, w, s)] == expect
    assert table["mobilenet_5x5_ratio_3"][(24, 32, 112, 112, 2)] == 24 * 72 * 112**2 + (
        25 * 72 + 72 * 32
    ) * (56**2)


def test_published_flops_and_params(paper: MobileNetSpace) -> None:
    arch = paper.parse("RLNAS_MOBILENET")
    assert paper.lut_flops(arch) == 473_248_184
    assert paper.lut_flops(arch) / 1e6 == pytest.approx(473.2, abs=0.1)
    net = paper.build_network(arch)
    assert count_params(net) == pytest.approx(5.256, abs=0.01)
    assert sum(p.numel() for p in net.parameters()) == 5_255_648
    # PyTorch counts the Linear as in*out MACs, thop as (2*in - 1)*out: the LUT exceeds it by
    # (in - 1)*out exactly
    macs = count_macs(net, paper.input_shape) * 1e6
    assert macs == pytest.approx(paper.lut_flops(arch) - 1727 * 1000, abs=1.0)


def test_lut_matches_counted_macs_on_cpu_space(cpu: MobileNetSpace) -> None:
    rng = np.random.default_rng(2)
    c_head = cpu.post_key()[1]
    for arch in [*cpu.extremes(), cpu.sample(rng)]:
        macs = count_macs(cpu.build_network(arch), cpu.input_shape) * 1e6
        lut = cpu.lut_flops(arch)
        assert macs == pytest.approx(lut - (c_head - 1) * cpu.num_classes, abs=1e-3 * lut)


# --- cost objective and configs --------------------------------------------------------------
def _compose(*overrides: str) -> DictConfig:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name=None, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def test_flops_lut_objective_config(paper: MobileNetSpace) -> None:
    cfg = _compose("+space=mobilenet", "+objective=flops_lut_bounded")
    (cost,) = [instantiate(c) for c in cfg.objective.costs]
    assert isinstance(cost, FlopsLUTObjective)
    assert (cost.name, cost.cheap, cost.upper, cost.handling) == (
        "flops_lut",
        True,
        475.0,
        "constraint",
    )
    cost.check(paper)
    small, large = paper.extremes()
    rlnas = paper.parse("RLNAS_MOBILENET")
    assert cost(rlnas, paper) == pytest.approx(473.248184)
    assert cost.feasible(cost(rlnas, paper))
    assert 0 < cost(small, paper) < 475 < cost(large, paper)
    assert cost.violation(cost(large, paper)) == pytest.approx(cost(large, paper) - 475)


def test_flops_lut_objective_rejects_spaces_without_a_table() -> None:
    cost = FlopsLUTObjective()
    space = NB201Space(num_classes=10)
    with pytest.raises(NasxError, match="lookup table"):
        cost.check(space)
    with pytest.raises(NasxError, match="lookup table"):
        cost(Architecture((1,) * 6), space)


@pytest.mark.parametrize(
    ("option", "size", "width"), [("mobilenet", 224, 1.0), ("mobilenet_cpu", 32, 0.25)]
)
def test_space_configs_compose(option: str, size: int, width: float) -> None:
    from nasx.config import check_node

    cfg = _compose(f"+space={option}")
    check_node("space", cfg.space)
    space = instantiate(cfg.space, num_classes=10)
    assert isinstance(space, MobileNetSpace)
    assert (space.image_size, space.width_mult, space.n_var) == (size, width, 21)
