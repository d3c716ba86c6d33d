"""Metrics: wlm flatness, BN recalibration, accuracy, angle, and the evaluation runners."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nasx.data import FakeData
from nasx.metric import (
    AccuracyMetric,
    AngleMetric,
    FlatnessMetric,
    Metric,
    MetricContext,
    TorchRunner,
)
from nasx.metric.bn import recalibrate_bn
from nasx.metric.flatness import wlm_score
from nasx.search_space import NB201Space
from nasx.supernet import build_supernet
from nasx.supernet.nb201 import NB201Supernet

ALL_CONV3 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
MIXED = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
NO_PATH = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_space() -> NB201Space:
    return NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8)


@pytest.fixture(scope="module")
def trained():
    """A tiny supernet trained a few SGD steps on FakeData, with its initial weights."""
    torch.manual_seed(0)
    space = tiny_space()
    data = FakeData(
        num_train=128, num_test=32, size=8, num_classes=4, batch_size=32, eval_batch_size=32
    )
    data.setup(8, 3)
    supernet = build_supernet(space)
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


def make_ctx(trained, supernet=None, init_state="init") -> MetricContext:
    sp, data, trained_supernet, init = trained
    return MetricContext(
        space=sp,
        supernet=supernet if supernet is not None else trained_supernet,
        data=data,
        runner=TorchRunner(),
        init_state=init if init_state == "init" else init_state,
    )


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_unchanged(module: nn.Module, before: dict[str, torch.Tensor]) -> None:
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} was modified"


# --- wlm -----------------------------------------------------------------------------------


def test_wlm_score_by_hand():
    # poor = 2/0.001 + |0.5/0.002| + |1.5/0.003| = 2000 + 250 + 500
    assert wlm_score([2.0, 2.5, 4.0], [0.001, 0.003, 0.006]) == pytest.approx(
        1.0 / (2750.0 + 1e-5), rel=1e-12
    )
    # a falling loss counts by its absolute slope: 2/0.5 + |-1/0.5| = 6
    assert wlm_score([2.0, 1.0], [0.5, 1.0]) == pytest.approx(1.0 / (6.0 + 1e-5), rel=1e-12)
    # a single level
    assert wlm_score([0.3], [0.1]) == pytest.approx(1.0 / (3.0 + 1e-5), rel=1e-12)


@pytest.mark.parametrize(
    "stds", [(0.003, 0.001), (0.001, 0.001), (), (0.0, 0.1), (-0.1, 0.2), (0.1, 0.2, 0.15)]
)
def test_flatness_rejects_non_increasing_stds(stds):
    with pytest.raises(ValueError, match="stds"):
        FlatnessMetric(stds=stds)


def test_flatness_rejects_bad_options():
    with pytest.raises(ValueError, match="noise"):
        FlatnessMetric(noise="relative")
    with pytest.raises(ValueError):
        FlatnessMetric(recal_images=0)


class SpySupernet(NB201Supernet):
    """Keeps every network it extracts, so a test can look at the perturbed weights."""

    def __init__(self, space: NB201Space) -> None:
        super().__init__(space)
        self.nets: list[nn.Module] = []

    def extract(self, arch):
        net = super().extract(arch)
        self.nets.append(net)
        return net


def spy_on(supernet: NB201Supernet) -> SpySupernet:
    spy = SpySupernet(supernet.space)
    spy.load_state_dict(supernet.state_dict())
    return spy.eval()


@pytest.mark.parametrize(
    ("noise", "expected"),
    [
        # cumulative (GeNAS): sqrt(s1^2 + (s2 - s1)^2 + (s3 - s2)^2)
        ("cumulative", math.sqrt(0.01**2 + 0.02**2 + 0.03**2)),
        # fresh: the last level's std on the unperturbed weights
        ("fresh", 0.06),
    ],
)
def test_flatness_noise_has_the_documented_total_std(trained, noise, expected):
    spy = spy_on(trained[2])
    ctx = make_ctx(trained, supernet=spy)
    before = snapshot(ctx.supernet)
    arch = ctx.space.parse(ALL_CONV3)
    metric = FlatnessMetric(stds=(0.01, 0.03, 0.06), recal_images=32, val_images=32, noise=noise)
    out = metric(arch, ctx, gen(0))
    assert_unchanged(ctx.supernet, before)
    assert len(spy.nets) == 1
    perturbed = dict(spy.nets[0].named_parameters())
    original = dict(ctx.supernet.extract(arch).named_parameters())
    assert perturbed.keys() == original.keys()
    diffs = []
    for name, p in perturbed.items():
        d = (p.detach() - original[name].detach()).reshape(-1)
        assert d.abs().max() > 0, f"{name} was not perturbed"
        diffs.append(d)
    diff = torch.cat(diffs).double()
    assert diff.numel() > 20000
    assert float(diff.mean()) == pytest.approx(0.0, abs=expected * 0.05)
    assert float(diff.std()) == pytest.approx(expected, rel=0.03)
    # the score is wlm of the recorded losses
    losses = [out[f"loss_std{s:g}"] for s in (0.01, 0.03, 0.06)]
    assert out["flatness"] == pytest.approx(wlm_score(losses, [0.01, 0.03, 0.06]), rel=1e-9)
    assert all(np.isfinite(losses))


def test_flatness_depends_only_on_the_generator_seed(trained):
    ctx = make_ctx(trained)
    arch = ctx.space.parse(MIXED)
    metric = FlatnessMetric(stds=(0.01, 0.03), recal_images=32, val_images=64)
    a = metric(arch, ctx, gen(7))
    b = metric(arch, ctx, gen(7))
    c = metric(arch, ctx, gen(8))
    assert a == b
    assert a["loss_std0.01"] != c["loss_std0.01"]
    assert a["loss_std0.03"] != c["loss_std0.03"]
    assert set(a) == {"flatness", "loss_std0.01", "loss_std0.03"}
    assert a["flatness"] > 0


def test_flatness_grows_loss_with_noise(trained):
    ctx = make_ctx(trained)
    metric = FlatnessMetric(stds=(0.001, 1.0), recal_images=32, val_images=64, noise="fresh")
    out = metric(ctx.space.parse(ALL_CONV3), ctx, gen(0))
    assert out["loss_std1"] > out["loss_std0.001"]


# --- BN recalibration ----------------------------------------------------------------------


def _loader(n=40, batch=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 4, 4, generator=g) * 2.0 + torch.tensor([1.0, -2.0, 3.0]).view(1, 3, 1, 1)
    return x, DataLoader(TensorDataset(x, torch.zeros(n, dtype=torch.long)), batch_size=batch)


def _stale_bn(momentum=0.3) -> nn.Sequential:
    net = nn.Sequential(nn.BatchNorm2d(3, momentum=momentum))
    bn = net[0]
    bn.running_mean.fill_(7.0)
    bn.running_var.fill_(9.0)
    bn.num_batches_tracked.fill_(100)
    return net


def test_recalibrate_bn_exact_average_over_ceil_batches():
    x, loader = _loader()
    net = _stale_bn(momentum=0.3)
    out = recalibrate_bn(net, loader, images=20, momentum=None)  # ceil(20 / 8) = 3 batches
    bn = net[0]
    assert out is net
    assert not net.training
    assert bn.momentum == 0.3  # restored
    assert int(bn.num_batches_tracked) == 3
    batches = x[:24].split(8)
    mean = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    var = torch.stack([b.var(dim=(0, 2, 3), unbiased=True) for b in batches]).mean(0)
    torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(bn.running_var, var)


def test_recalibrate_bn_ema_starts_from_reset_statistics():
    x, loader = _loader()
    net = _stale_bn(momentum=0.05)
    recalibrate_bn(net, loader, images=1, momentum=0.1)  # one batch
    bn = net[0]
    b = x[:8]
    torch.testing.assert_close(bn.running_mean, 0.1 * b.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * b.var(dim=(0, 2, 3), unbiased=True))
    assert int(bn.num_batches_tracked) == 1
    assert bn.momentum == 0.05
    assert not net.training


def test_recalibrate_bn_restores_default_momentum_on_networks():
    space = tiny_space()
    net = build_supernet(space).extract(space.parse(ALL_CONV3))
    loader = DataLoader(
        TensorDataset(torch.randn(16, 3, 8, 8), torch.zeros(16).long()), batch_size=8
    )
    recalibrate_bn(net, loader, images=16, momentum=None)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.1 for m in bns)
    assert all(int(m.num_batches_tracked) == 2 for m in bns)
    assert not any(m.training for m in net.modules())


# --- accuracy ------------------------------------------------------------------------------


def test_accuracy_metric_matches_a_direct_computation(trained):
    ctx = make_ctx(trained)
    before = snapshot(ctx.supernet)
    arch = ctx.space.parse(MIXED)
    metric = AccuracyMetric(recal_images=64, val_images=48)
    out = metric(arch, ctx, gen(3))
    assert_unchanged(ctx.supernet, before)
    assert set(out) == {"accuracy", "valid_loss"}
    assert 0.0 <= out["accuracy"] <= 1.0

    # the same steps by hand: the recalibration loader's seed comes from the generator
    g = gen(3)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    net = ctx.supernet.extract(arch)
    recalibrate_bn(net, ctx.data.train_loader(seed), 64, 0.1)
    res = TorchRunner().evaluate(net, ctx.data.eval_loader("valid", 48))
    assert res.images == 48
    assert out["accuracy"] == res.accuracy
    assert out["valid_loss"] == pytest.approx(res.loss, abs=1e-6)

    # and without any runner: top-1 over the first 48 valid images, loss per batch of 32
    xv, yv = (t[:48] for t in ctx.data.split("valid"))
    with torch.no_grad():
        logits = net(xv)
    assert out["accuracy"] == pytest.approx(float((logits.argmax(1) == yv).float().mean()))
    batch_losses = [
        float(nn.functional.cross_entropy(logits[i : i + 32], yv[i : i + 32])) for i in (0, 32)
    ]
    assert out["valid_loss"] == pytest.approx(np.mean(batch_losses), abs=1e-5)


def test_accuracy_metric_is_reproducible(trained):
    ctx = make_ctx(trained)
    arch = ctx.space.parse(ALL_CONV3)
    metric = AccuracyMetric(recal_images=64, val_images=64)
    assert metric(arch, ctx, gen(1)) == metric(arch, ctx, gen(1))


# --- angle ---------------------------------------------------------------------------------


def test_angle_is_zero_without_a_path(trained):
    ctx = make_ctx(trained)
    assert AngleMetric()(ctx.space.parse(NO_PATH), ctx, gen(0)) == {"angle": 0.0}


@pytest.mark.parametrize("text", [ALL_CONV3, MIXED])
def test_angle_equals_arccos_of_the_cosine(trained, text):
    ctx = make_ctx(trained)
    arch = ctx.space.parse(text)
    v0 = build_supernet(ctx.space).path_weights(trained[3], arch).double().numpy()
    v1 = build_supernet(ctx.space).path_weights(ctx.supernet.state_dict(), arch).double().numpy()
    cos = float(v0 @ v1 / (np.linalg.norm(v0) * np.linalg.norm(v1)))
    expected = math.acos(cos)
    assert expected > 1e-3  # training moved the weights
    assert AngleMetric()(arch, ctx, gen(0))["angle"] == pytest.approx(expected, rel=1e-9)
    normalized = AngleMetric(normalize=True)(arch, ctx, gen(0))["angle"]
    assert normalized == pytest.approx(expected / math.pi, rel=1e-9)


def test_angle_is_zero_for_unchanged_weights(trained):
    ctx = make_ctx(trained, init_state=snapshot(trained[2]))
    for text in (ALL_CONV3, MIXED):
        assert AngleMetric()(ctx.space.parse(text), ctx, gen(0))["angle"] == pytest.approx(
            0.0, abs=1e-6
        )


def test_angle_needs_the_initial_weights(trained):
    ctx = make_ctx(trained, init_state=None)
    with pytest.raises(RuntimeError, match="initial weights"):
        AngleMetric()(ctx.space.parse(ALL_CONV3), ctx, gen(0))


# --- the metric contract and the runners ---------------------------------------------------


def test_metric_must_return_its_own_name(trained):
    class Broken(Metric):
        name = "broken"

        def _compute(self, arch, ctx, generator):
            return {"other": 1.0}

    with pytest.raises(RuntimeError, match="broken"):
        Broken()(tiny_space().parse(ALL_CONV3), make_ctx(trained), gen(0))


def test_metric_values_become_floats(trained):
    class IntMetric(Metric):
        name = "m"

        def _compute(self, arch, ctx, generator):
            return {"m": 3, "extra": np.float32(0.5)}

    out = IntMetric()(tiny_space().parse(ALL_CONV3), make_ctx(trained), gen(0))
    assert out == {"m": 3.0, "extra": 0.5}
    assert all(type(v) is float for v in out.values())


def test_final_state_is_a_cached_cpu_copy(trained):
    ctx = make_ctx(trained)
    s = ctx.final_state
    assert s is ctx.final_state
    assert s.keys() == ctx.supernet.state_dict().keys()
    assert all(v.device.type == "cpu" for v in s.values())


def test_torch_runner_weighs_batches_equally():
    # two batches: 3 images all right with logit margin, 1 image wrong
    net = nn.Identity()
    x = torch.tensor([[5.0, 0.0], [5.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    y = torch.tensor([0, 0, 0, 0])
    res = TorchRunner().evaluate(net, DataLoader(TensorDataset(x, y), batch_size=3))
    l_right = float(nn.functional.cross_entropy(x[:1], y[:1]))
    l_wrong = float(nn.functional.cross_entropy(x[3:], y[3:]))
    assert res.images == 4
    assert res.accuracy == pytest.approx(0.75)
    assert res.loss == pytest.approx((l_right + l_wrong) / 2)


def test_lightning_runner_matches_torch_runner(trained):
    from nasx.lit import LightningRunner

    space, data, supernet, _ = trained
    net = supernet.extract(space.parse(MIXED)).eval()
    loader = data.eval_loader("valid", 50)
    ref = TorchRunner().evaluate(net, loader)
    res = LightningRunner(accelerator="cpu").evaluate(net, loader)
    assert res.images == ref.images == 50
    assert res.accuracy == ref.accuracy
    assert res.loss == pytest.approx(ref.loss, abs=1e-6)


class _DtypeProbe(nn.Module):
    """Records the dtype its linear layer computes in (bfloat16 under CPU autocast)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 4 * 4, 2)
        self.seen: list[torch.dtype] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x.flatten(1))
        self.seen.append(out.dtype)
        return out


def test_evaluation_runner_honours_the_trainer_preset(compose_cfg):
    from nasx.stages.context import evaluation_runner

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(8, 3, 4, 4), torch.randint(0, 2, (8,))),
        batch_size=4,
    )
    plain = _DtypeProbe().eval()
    evaluation_runner(compose_cfg("trainer=cpu").trainer).evaluate(plain, loader)
    assert plain.seen == [torch.float32] * 2
    # trainer=gpu's mixed precision reaches candidate evaluation (bf16 is the CPU's autocast)
    mixed = _DtypeProbe().eval()
    runner = evaluation_runner(compose_cfg("trainer.precision=bf16-mixed").trainer)
    assert runner.trainer.precision == "bf16-mixed"
    runner.evaluate(mixed, loader)
    assert mixed.seen == [torch.bfloat16] * 2
    assert compose_cfg("trainer=gpu").trainer.precision == "16-mixed"


def test_recalibration_reads_a_short_loader_again():
    """Asked for more images than the loader holds, the EMA still gets every update."""
    bn = nn.BatchNorm2d(1)
    net = nn.Sequential(bn)
    x = torch.full((4, 1, 2, 2), 3.0) + torch.arange(4.0).view(4, 1, 1, 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x), batch_size=4)
    recalibrate_bn(net, loader, images=40, momentum=0.1)  # 10 batches from a 1-batch loader
    assert int(bn.num_batches_tracked) == 10
    # EMA from the reset mean 0 towards the batch mean 4.5: 4.5 * (1 - 0.9 ** 10)
    assert float(bn.running_mean[0]) == pytest.approx(4.5 * (1 - 0.9**10), rel=1e-5)
