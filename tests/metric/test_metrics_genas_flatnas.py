"""GeNAS combined scores (angle+wlm, acc+wlm), FlatNAS robustness and top1_robust."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from nasx.data import FakeData
from nasx.metric import (
    AccuracyFlatnessMetric,
    AccuracyMetric,
    AngleFlatnessMetric,
    AngleMetric,
    FlatnessMetric,
    MetricContext,
    RobustnessMetric,
    TorchRunner,
)
from nasx.metric.bn import recalibrate_bn
from nasx.metric.robustness import alpha_norm, top1_robust
from nasx.search_space import NB201Space
from nasx.supernet.nb201 import NB201Supernet

ALL_CONV3 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
MIXED = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
STDS = (0.01, 0.03, 0.06)


pytestmark = pytest.mark.usefixtures("one_thread")


class SpySupernet(NB201Supernet):
    """Keeps every network it extracts."""

    def __init__(self, space: NB201Space) -> None:
        super().__init__(space)
        self.nets: list[nn.Module] = []

    def extract(self, arch):
        net = super().extract(arch)
        self.nets.append(net)
        return net


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    space = NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8)
    data = FakeData(
        num_train=128, num_test=32, size=8, num_classes=4, batch_size=32, eval_batch_size=32
    )
    data.setup(8, 3)
    supernet = SpySupernet(space)
    init = {k: v.detach().clone() for k, v in supernet.state_dict().items()}
    opt = torch.optim.SGD(supernet.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    supernet.train()
    for epoch in range(2):
        for x, y in data.train_loader(seed=epoch):
            loss = nn.functional.cross_entropy(supernet(x, supernet.sample_path(rng)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    supernet.eval()
    return space, data, supernet, init


def make_ctx(trained, runner=None) -> MetricContext:
    space, data, supernet, init = trained
    return MetricContext(space, supernet, data, runner or TorchRunner(), init_state=init)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# --- combined scores -----------------------------------------------------------------------


def test_angle_flatness_is_the_genas_formula(trained):
    ctx = make_ctx(trained)
    arch = ctx.space.parse(MIXED)
    metric = AngleFlatnessMetric(stds=STDS, wlm_weight=16.0, recal_images=32, val_images=64)
    out = metric(arch, ctx, gen(5))
    angle = AngleMetric()(arch, ctx, gen(5))["angle"]
    flat = FlatnessMetric(stds=STDS, recal_images=32, val_images=64)(arch, ctx, gen(5))
    # angle/pi + gamma * beta * wlm with gamma = 16, beta = 1/0.01 = 100
    expected = angle / math.pi + 16.0 * 100.0 * flat["flatness"]
    assert out["angle_flatness"] == pytest.approx(expected, rel=1e-12)
    assert out["angle"] == angle and out["flatness"] == flat["flatness"]
    assert out["angle_term"] == pytest.approx(angle / math.pi, rel=1e-12)
    assert out["flatness_term"] == pytest.approx(1600.0 * flat["flatness"], rel=1e-12)
    assert out["angle_share"] + out["flatness_share"] == pytest.approx(1.0)
    assert out["angle_share"] == pytest.approx(angle / math.pi / expected, rel=1e-12)
    assert {f"loss_std{s:g}" for s in STDS} <= set(out)
    assert metric.higher_is_better


def test_combined_scores_by_hand(trained, monkeypatch):
    ctx = make_ctx(trained)
    arch = ctx.space.parse(ALL_CONV3)
    monkeypatch.setattr(
        FlatnessMetric, "_compute", lambda self, a, c, g: {"flatness": 5e-4, "loss_std0.001": 2.0}
    )
    monkeypatch.setattr(AngleMetric, "_compute", lambda self, a, c, g: {"angle": math.pi / 4})
    monkeypatch.setattr(
        AccuracyMetric, "_compute", lambda self, a, c, g: {"accuracy": 0.7, "valid_loss": 1.0}
    )
    # README numbers: gamma 16, beta 1000 -> 0.25 + 16 * 1000 * 5e-4 = 0.25 + 8
    out = AngleFlatnessMetric()(arch, ctx, gen(0))
    assert out["angle_flatness"] == pytest.approx(8.25)
    assert out["flatness_share"] == pytest.approx(8 / 8.25)
    out = AccuracyFlatnessMetric(wlm_weight=2.0)(arch, ctx, gen(0))
    assert out["accuracy_flatness"] == pytest.approx(0.7 + 2.0 * 1000 * 5e-4)
    assert out["accuracy"] == 0.7 and out["accuracy_term"] == 0.7
    assert out["accuracy_share"] == pytest.approx(0.7 / 1.7)


def test_accuracy_flatness_is_the_genas_formula(trained):
    ctx = make_ctx(trained)
    arch = ctx.space.parse(MIXED)
    metric = AccuracyFlatnessMetric(
        stds=STDS, wlm_weight=3.0, recal_images=32, val_images=64, acc_recal_images=64,
        acc_val_images=48,
    )  # fmt: skip
    out = metric(arch, ctx, gen(9))
    # the generator is read by the accuracy first, then by the flatness
    g = gen(9)
    acc = AccuracyMetric(recal_images=64, val_images=48)(arch, ctx, g)
    flat = FlatnessMetric(stds=STDS, recal_images=32, val_images=64)(arch, ctx, g)
    expected = acc["accuracy"] + 3.0 / 0.01 * flat["flatness"]
    assert out["accuracy_flatness"] == pytest.approx(expected, rel=1e-12)
    assert out["accuracy"] == acc["accuracy"] and out["flatness"] == flat["flatness"]
    defaults = AccuracyFlatnessMetric()
    assert (defaults.accuracy.recal_images, defaults.accuracy.val_images) == (15000, 25000)
    assert (defaults.flatness.recal_images, defaults.flatness.val_images) == (850, 25000)


# --- robustness ----------------------------------------------------------------------------


def test_robustness_is_zero_without_noise(trained):
    ctx = make_ctx(trained)
    out = RobustnessMetric(sigma=0.0, draws=3, val_images=64, recal_images=32)(
        ctx.space.parse(MIXED), ctx, gen(0)
    )
    assert out["robustness"] == 0.0
    assert out["top1_err"] == pytest.approx(100.0 - 100.0 * out["accuracy"])


def test_robustness_is_deterministic_and_restores_the_weights(trained):
    ctx = make_ctx(trained)
    space = ctx.space
    before = snapshot(ctx.supernet)
    arch = space.parse(ALL_CONV3)
    metric = RobustnessMetric(sigma=2.0, draws=4, val_images=64, recal_images=32)
    a = metric(arch, ctx, gen(3))
    net = ctx.supernet.nets[-1]
    b = metric(arch, ctx, gen(3))
    c = metric(arch, ctx, gen(4))
    assert a == b
    assert a["robustness"] > 0 and a["robustness"] != c["robustness"]
    assert not metric.higher_is_better
    # the supernet is untouched; the extracted net's parameters equal a fresh extraction
    for k, v in ctx.supernet.state_dict().items():
        assert torch.equal(v, before[k]), k
    fresh = dict(NB201Supernet.extract(ctx.supernet, arch).named_parameters())
    for name, p in net.named_parameters():
        assert torch.equal(p, fresh[name]), name


def test_robustness_by_hand(trained):
    """Mean |acc0 - acc| (%) over draws of w + sigma * w * r with r from the generator."""
    ctx = make_ctx(trained)
    arch = ctx.space.parse(MIXED)
    out = RobustnessMetric(sigma=0.3, draws=3, val_images=64, recal_images=32)(arch, ctx, gen(1))
    g = gen(1)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    net = NB201Supernet.extract(ctx.supernet, arch)
    recalibrate_bn(net, ctx.data.train_loader(seed), 32, 0.1)
    loader = ctx.data.eval_loader("valid", 64)
    acc0 = 100 * TorchRunner().evaluate(net, loader).accuracy
    diffs = []
    for _ in range(3):
        pert = copy.deepcopy(net)
        with torch.no_grad():
            for p in pert.parameters():
                p.add_(0.3 * p * torch.randn(p.shape, generator=g))
        diffs.append(abs(acc0 - 100 * TorchRunner().evaluate(pert, loader).accuracy))
    assert out["robustness"] == pytest.approx(np.mean(diffs), abs=1e-9)
    assert out["accuracy"] == pytest.approx(acc0 / 100)
    rounded = RobustnessMetric(sigma=0.3, draws=3, val_images=64, recal_images=32, round_to=2)
    assert rounded(arch, ctx, gen(1))["robustness"] == round(out["robustness"], 2)


@pytest.mark.parametrize(
    "kwargs", [{"sigma": -0.1}, {"draws": 0}, {"val_images": 0}, {"round_to": -1}]
)
def test_robustness_rejects_bad_options(kwargs):
    with pytest.raises(ValueError):
        RobustnessMetric(**kwargs)


def test_top1_robust_and_alpha_norm_by_hand():
    assert top1_robust(30.0, 4.0) == pytest.approx(0.5 * 30 + 1.0 * 0.5 * 4)
    assert top1_robust(30.0, 4.0, alpha=0.25, alpha_norm=5.0) == pytest.approx(
        7.5 + 5.0 * 0.75 * 4.0
    )
    assert alpha_norm([20.0, 40.0], [1.0, 3.0]) == pytest.approx(30.0 / 2.0)
    assert alpha_norm([20.0], [0.0]) == 1.0
    with pytest.raises(ValueError):
        alpha_norm([], [])
    with pytest.raises(ValueError):
        alpha_norm([1.0], [1.0, 2.0])


# --- the cached device batches -------------------------------------------------------------


def test_flatness_under_lightning_equals_torch_runner(trained):
    from nasx.lit import LightningRunner

    arch = trained[0].parse(MIXED)
    metric = FlatnessMetric(stds=STDS, recal_images=32, val_images=50)
    ref = metric(arch, make_ctx(trained), gen(2))
    res = metric(arch, make_ctx(trained, LightningRunner(accelerator="cpu")), gen(2))
    assert res.keys() == ref.keys()
    for k in ref:
        assert res[k] == pytest.approx(ref[k], rel=1e-6), k


def test_cached_batches_are_eval_loader_batches(trained):
    data = trained[1]
    ctx = make_ctx(trained)
    loader = ctx.valid_loader(50)
    assert ctx.valid_loader(50) is loader
    ref = list(data.eval_loader("valid", 50))
    got = list(loader)
    assert len(got) == len(ref) == 2
    for (x, y), (xr, yr) in zip(got, ref, strict=True):
        assert torch.equal(x, xr) and torch.equal(y, yr)
    assert ctx.valid_loader(40) is not loader
    clone = copy.deepcopy(ctx._batches)  # the cache is not copied
    assert clone._entries == {}
