"""NSGANetV2's candidate evaluation (§3): fixed BN subset, classifier reset, fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nasx.data import FakeData
from nasx.metric import AccuracyMetric, MetricContext, TorchRunner
from nasx.metric.accuracy import reset_classifier
from nasx.search_space import NB201Space
from nasx.supernet import build_supernet

pytestmark = pytest.mark.usefixtures("one_thread")
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def ctx() -> MetricContext:
    torch.manual_seed(0)
    space = NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8)
    data = FakeData(num_train=128, num_test=32, size=8, num_classes=4, batch_size=16)
    data.setup(8, 3)
    supernet = build_supernet(space)
    opt = torch.optim.SGD(supernet.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    for x, y in data.train_loader(seed=0):
        loss = nn.functional.cross_entropy(supernet(x, supernet.sample_path(rng)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return MetricContext(space=space, supernet=supernet.eval(), data=data, runner=TorchRunner())


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_fixed_recalibration_subset_is_the_same_for_every_candidate(ctx) -> None:
    arch = ctx.space.parse(CELL)
    fixed = AccuracyMetric(recal_images=32, val_images=32, bn_momentum=None, recal_seed=7)
    # the architecture's own stream no longer decides the BN subset
    assert fixed(arch, ctx, gen(1)) == fixed(arch, ctx, gen(2))
    drawn = AccuracyMetric(recal_images=32, val_images=32, bn_momentum=0.1)
    assert drawn(arch, ctx, gen(1)) != drawn(arch, ctx, gen(2))


def test_finetuning_is_deterministic_and_leaves_the_supernet_alone(ctx) -> None:
    arch = ctx.space.parse(CELL)
    before = {k: v.clone() for k, v in ctx.supernet.state_dict().items()}
    metric = AccuracyMetric(
        recal_images=32, val_images=32, bn_momentum=None, recal_seed=7,
        finetune_epochs=2, finetune_lr=0.05,
    )  # fmt: skip
    a, b = metric(arch, ctx, gen(3)), metric(arch, ctx, gen(3))
    assert a == b
    plain = AccuracyMetric(recal_images=32, val_images=32, bn_momentum=None, recal_seed=7)
    assert a["valid_loss"] != plain(arch, ctx, gen(3))["valid_loss"]  # it was trained
    assert all(torch.equal(v, before[k]) for k, v in ctx.supernet.state_dict().items())


def test_reset_classifier_reinitialises_the_head_behind_dropout() -> None:
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    first, head = net[0].weight.clone(), net[2].weight.clone()
    reset_classifier(net, dropout=0.5, seed=1)
    assert torch.equal(net[0].weight, first) and not torch.equal(net[2].weight, head)
    x = torch.ones(64, 6)
    net.eval()
    assert torch.equal(net(x), net(x))  # no dropout in eval mode
    net.train()
    torch.manual_seed(0)
    assert not torch.equal(net(x), net(x))  # dropout in front of the head while training
    assert set(dict(net.named_parameters())) == {"0.weight", "0.bias", "2.weight", "2.bias"}
