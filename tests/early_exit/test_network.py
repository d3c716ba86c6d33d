"""Early-exit network: NACHOS's heads, adaptive pooling, costs, and true early-exit inference."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasx.early_exit import (
    EarlyExitNetwork,
    EarlyExitOutput,
    assign_exits,
    avg_macs,
    build_exit_head,
    exit_ratios,
    head_cost,
    score_margin,
)
from nasx.early_exit.heads import max_pool_kernel
from nasx.objective.profile import count_macs
from nasx.search_space import OFAMobileNetV3Space
from nasx.supernet import build_supernet

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (3, 32, 32)
SUBNET = {
    "ks": [5, 3, 5, 7, 3, 5, 7, 3, 5, 7, 3, 5, 7, 3, 5, 7],
    "e": [3, 4, 6, 3, 4, 6, 3, 4, 6, 3, 4, 6, 3, 4, 6, 3],
    "d": [4, 3, 2, 4, 3],
}


def spread_heads(net: EarlyExitNetwork) -> EarlyExitNetwork:
    """Kaiming-initialised intermediate heads: outputs that differ from sample to sample.

    With PyTorch's default init the heads' outputs barely depend on the input, so margins tie
    to 1e-8, too close for exact comparisons between batch sizes.
    """
    for head in net.heads[:-1]:
        for m in head.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return net.eval()


@pytest.fixture(scope="module")
def backbone() -> nn.Module:
    """A random-init subnet with BN statistics recalibrated on random images (unit features)."""
    torch.manual_seed(0)
    space = OFAMobileNetV3Space(num_classes=10, width_mult=0.35, resolutions=(32, 32, 1))
    net = build_supernet(space).extract(space.from_subnet(SUBNET))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batch
    with torch.no_grad():
        net(torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(5)))
    return net.eval()


@pytest.fixture(scope="module")
def margin(backbone: nn.Module) -> EarlyExitNetwork:
    torch.manual_seed(1)
    net = EarlyExitNetwork(backbone, SUBNET["d"], [1, 2, 3, 4], 10, False, SHAPE)
    return spread_heads(net)


@pytest.fixture(scope="module")
def cumulative(backbone: nn.Module) -> EarlyExitNetwork:
    torch.manual_seed(2)
    net = EarlyExitNetwork(backbone, SUBNET["d"], [2, 3, 4], 10, True, SHAPE, rule="cumulative")
    return spread_heads(net)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(24, *SHAPE, generator=torch.Generator().manual_seed(3))


def conv_macs(c_in: int, c_out: int, hw: int) -> int:
    return 9 * c_in * c_out * hw


def test_head_structure() -> None:
    head = build_exit_head(16, 10, binary=True, pool=2, in_size=(4, 4))
    kinds = [type(m) for m in head]
    relu, conv = nn.ReLU, nn.Conv2d
    assert kinds == [nn.MaxPool2d, relu, conv, relu, conv, relu, conv, relu, nn.Flatten, relu,
                     nn.Linear]  # fmt: skip
    assert head[0].kernel_size == head[0].stride == 2
    convs = [m for m in head if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == [(16, 32), (32, 64), (64, 128)]
    assert all(
        m.kernel_size == (3, 3) and m.stride == (1, 1) and m.padding == (1, 1) for m in convs
    )
    assert (head[-1].in_features, head[-1].out_features) == (128 * 2 * 2, 11)  # pooled to 2x2
    assert head(torch.randn(5, 16, 4, 4)).shape == (5, 11)
    plain = build_exit_head(8, 10, binary=False, pool=None, in_size=(2, 2))
    assert not any(isinstance(m, nn.MaxPool2d) for m in plain) and plain[-1].out_features == 10
    assert plain(torch.randn(1, 8, 2, 2)).shape == (1, 10)  # the padded convs keep 2x2 maps
    with pytest.raises(ValueError, match="does not fit"):
        build_exit_head(16, 10, False, 4, (2, 2))
    assert [max_pool_kernel(c) for c in (4, 8, 15, 16, 40)] == [1, 2, 2, 4, 4]


def test_head_cost_by_hand() -> None:
    head = build_exit_head(8, 10, binary=True, pool=2, in_size=(8, 8))
    pool = 8 * 8 * 8  # C * H * W of the pool's input
    convs = conv_macs(8, 32, 16) + conv_macs(32, 64, 16) + conv_macs(64, 128, 16)
    linear = 128 * 16 * 11
    cost = head_cost(head, (8, 8, 8))
    assert cost.macs == pytest.approx((pool + convs + linear) / 1e6, rel=1e-12)
    assert cost.pool_macs == pytest.approx(pool / 1e6, rel=1e-12)
    # flop_counter sees the same convolutions and linear, and no pool
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        head(torch.zeros(1, 8, 8, 8))
    assert counter.get_total_flops() / 2 == convs + linear


def test_layout_and_forward(
    backbone: nn.Module, margin: EarlyExitNetwork, cumulative: EarlyExitNetwork
) -> None:
    assert margin.exit_blocks == (4, 7, 9, 13, 16) and margin.n_exits == 5
    assert cumulative.exit_blocks == (7, 9, 13, 16) and cumulative.n_exits == 4
    assert margin.exit_shapes == [(8, 8, 8), (16, 4, 4), (32, 2, 2), (40, 2, 2), (56, 1, 1)]
    x = torch.randn(3, *SHAPE)
    with torch.no_grad():
        outs, bin_outs, ref = margin(x), cumulative(x), backbone(x)
    assert [o.shape for o in outs] == [(3, 10)] * 5
    assert [o.shape for o in bin_outs] == [(3, 11)] * 3 + [(3, 10)]  # confidence unit
    assert torch.equal(outs[-1], ref) and torch.equal(bin_outs[-1], ref)  # OFA's own head
    # parameters: the backbone's and the heads' split every parameter once
    ids = [id(p) for p in margin.backbone_parameters() + margin.head_parameters()]
    assert sorted(ids) == sorted(id(p) for p in margin.parameters())
    assert margin.params == pytest.approx(sum(p.numel() for p in margin.parameters()) / 1e6)
    n_backbone = sum(p.numel() for p in backbone.parameters()) / 1e6
    assert margin.params == pytest.approx(n_backbone + sum(margin.head_params[:-1]))


def test_costs(backbone: nn.Module, margin: EarlyExitNetwork) -> None:
    stem, blocks = backbone.first_conv, backbone.blocks
    for b, i in enumerate(margin.exit_blocks):
        truncated = nn.Sequential(stem, *blocks[: i + 1])
        assert margin.backbone_macs[b] == count_macs(truncated, SHAPE)
        assert margin.head_macs[b] == head_cost(margin.heads[b], margin.exit_shapes[b]).macs
        assert margin.exit_costs[b] == margin.backbone_macs[b] + margin.head_macs[b]
        spent = margin.backbone_macs[b] + sum(margin.head_macs[: b + 1])
        assert margin.inference_costs[b] == pytest.approx(spent, rel=1e-12)
    # the final exit is the whole backbone; its global average pool is the counter's addition
    pool = 336 * 1 * 1 / 1e6  # C * H * W of final_expand_layer's output
    assert margin.exit_costs[-1] == pytest.approx(count_macs(backbone, SHAPE) + pool, rel=1e-9)
    # eval-mode forward still works with the standard counter: backbone + every head
    heads_seen = sum(
        head_cost(margin.heads[b], margin.exit_shapes[b]).macs - pool_of_cost
        for b, pool_of_cost in enumerate(intermediate_pools(margin))
    )
    assert count_macs(margin, SHAPE) == pytest.approx(
        count_macs(backbone, SHAPE) + heads_seen, rel=1e-9
    )
    assert not margin.training  # count_macs left eval mode; the fixture's mode


def intermediate_pools(net: EarlyExitNetwork) -> list[float]:
    """M MACs of each intermediate head's max pool, C * H * W of its input (0: no pool)."""
    shapes = net.exit_shapes[:-1]
    return [
        math.prod(s) / 1e6 if pool_of(h) else 0.0
        for h, s in zip(net.heads[:-1], shapes, strict=True)
    ]


def pool_of(head: nn.Module) -> int | None:
    return head[0].kernel_size if isinstance(head[0], nn.MaxPool2d) else None


def test_adaptive_pooling(margin: EarlyExitNetwork, cumulative: EarlyExitNetwork) -> None:
    for net in (margin, cumulative):
        costs = net.exit_costs
        for b in range(net.n_exits - 1):
            c, h, w = net.exit_shapes[b]
            k = pool_of(net.heads[b])
            if costs[b] >= costs[b + 1]:  # only when even the largest pool did not suffice
                assert k == min(max_pool_kernel(c), h, w)
            # the smallest sufficient pool: one step less would not have been below the next
            if k is not None:
                smaller = build_exit_head(c, 10, net.binary, k // 2 or None, (h, w))
                cost = net.backbone_macs[b] + head_cost(smaller, (c, h, w)).macs
                assert cost >= costs[b + 1]
    # here every exit after stage 2 onwards ends up cheaper than the next
    costs = cumulative.exit_costs
    assert all(costs[b] < costs[b + 1] for b in range(len(costs) - 1))
    assert [pool_of(h) for h in cumulative.heads[:-1]] == [2, None, 2]
    # the 8-channel 8x8 exit may pool by 2 only and stays dearer than the next (NACHOS)
    assert pool_of(margin.heads[0]) == 2 and margin.exit_costs[0] > margin.exit_costs[1]


def test_backbone_frozen_forward(margin: EarlyExitNetwork) -> None:
    x = torch.randn(2, *SHAPE)
    margin.zero_grad(set_to_none=True)
    sum(o.sum() for o in margin(x, backbone_grad=False)).backward()
    assert all(p.grad is None for p in margin.backbone_parameters())
    assert all(p.grad is not None for p in margin.head_parameters())
    margin.zero_grad(set_to_none=True)


def mixed_thresholds(net: EarlyExitNetwork, x: torch.Tensor) -> list[float]:
    """Thresholds between the data's own scores: about a third of those inside leave each time."""
    with torch.no_grad():
        outs = net(x)
    state = net.rule.start(len(x), x.device)
    inside = torch.ones(len(x), dtype=torch.bool)
    out = []
    for b in range(net.n_exits - 1):
        _, new = net.rule.step(outs[b], math.inf, state)
        score = new[:, 1] if net.rule.binary else score_margin(outs[b])
        values = score[inside].sort().values
        # split about 2/3 of the way up, at a clear gap (no sample within 1e-6 of the threshold)
        gaps = [j for j in range(1, len(values)) if values[j] - values[j - 1] > 2e-6]
        assert gaps, "the scores tie: no threshold separates them"
        i = min(gaps, key=lambda j: abs(j - 2 * len(values) / 3))
        t = float(values[i - 1] + values[i]) / 2
        out.append(t)
        inside &= score < t
        state = new
    return out


def check_infer(net: EarlyExitNetwork, x: torch.Tensor) -> EarlyExitOutput:
    assert net.thresholds is not None
    with torch.no_grad():
        exits, preds = assign_exits(net(x), net.thresholds, net.rule)
    res = net.infer(x, count_macs=True)
    assert torch.equal(res.exits, exits) and torch.equal(res.preds, preds)
    assert res.macs is not None
    costs = torch.tensor(net.inference_costs, dtype=torch.float64)
    assert torch.allclose(res.macs, costs[res.exits], rtol=1e-9, atol=0)
    ratios = exit_ratios(res.exits, net.n_exits)
    assert float(res.macs.mean()) == pytest.approx(avg_macs(ratios, net.inference_costs), rel=1e-6)
    # CNAS's avg_macs leaves out the heads of the exits a sample passed
    passed = sum(w * sum(net.head_macs[:b]) for b, w in enumerate(ratios))
    assert avg_macs(ratios, net.exit_costs) + passed == pytest.approx(float(res.macs.mean()))
    return res


@pytest.mark.parametrize("rule", ["margin", "cumulative"])
def test_infer_equals_batch_evaluation(
    rule: str, margin: EarlyExitNetwork, cumulative: EarlyExitNetwork, images: torch.Tensor
) -> None:
    net = margin if rule == "margin" else cumulative
    last = net.n_exits - 1
    try:
        net.thresholds = [0.0] * last  # every sample leaves at the first exit
        assert (check_infer(net, images).exits == 0).all()
        assert (check_infer(net, images[:1]).exits == 0).all()
        net.thresholds = [2.0] * (last + 1)  # none leaves early (a final threshold is dropped)
        assert net.thresholds == (2.0,) * last
        assert (check_infer(net, images).exits == last).all()
        assert (check_infer(net, images[:1]).exits == last).all()
        net.thresholds = mixed_thresholds(net, images)
        res = check_infer(net, images)
        assert len(set(res.exits.tolist())) == net.n_exits  # every exit takes some
        for i in range(6):  # batch size 1: each sample alone decides as in the batch
            one = check_infer(net, images[i : i + 1])
            assert one.exits.item() == res.exits[i].item() and one.preds.item() == res.preds[i]
    finally:
        net.thresholds = None


def test_infer_stops_computing(margin: EarlyExitNetwork, images: torch.Tensor) -> None:
    seen: dict[str, list[int]] = {}

    def record(name: str) -> Callable[..., None]:
        return lambda _m, inputs, _o: seen.setdefault(name, []).append(len(inputs[0]))

    last_block = margin.blocks[-1]
    after_first = margin.blocks[margin.exit_blocks[0] + 1]
    hooks = [
        last_block.register_forward_hook(record("last")),
        after_first.register_forward_hook(record("after_first")),
        margin.heads[1].register_forward_hook(record("head1")),
    ]
    try:
        margin.thresholds = [0.0] * 4
        res = margin.infer(images)
        assert res.macs is None and (res.exits == 0).all() and not seen  # nothing after exit 0
        margin.thresholds = mixed_thresholds(margin, images)  # runs forward: clear after
        seen.clear()
        res = margin.infer(images)
        n0 = int((res.exits == 0).sum())
        assert seen["after_first"] == [len(images) - n0] and seen["head1"] == [len(images) - n0]
        assert seen["last"] == [int((res.exits == 4).sum())]
    finally:
        for h in hooks:
            h.remove()
        margin.thresholds = None


def test_refusals(backbone: nn.Module, margin: EarlyExitNetwork) -> None:
    with pytest.raises(ValueError, match="stage depths"):
        EarlyExitNetwork(backbone, [4, 3, 2, 4], [1], 10, False, SHAPE)
    with pytest.raises(ValueError, match="sorted subset"):
        EarlyExitNetwork(backbone, SUBNET["d"], [3, 1], 10, False, SHAPE)
    with pytest.raises(ValueError, match="sorted subset"):
        EarlyExitNetwork(backbone, SUBNET["d"], [5], 10, False, SHAPE)
    with pytest.raises(ValueError, match="binary=True"):
        EarlyExitNetwork(backbone, SUBNET["d"], [1], 10, False, SHAPE, rule="cumulative")
    with pytest.raises(ValueError, match="thresholds"):
        margin.thresholds = [0.5]
    with pytest.raises(RuntimeError, match="thresholds"):
        margin.infer(torch.zeros(1, *SHAPE))
    margin.thresholds = [0.5] * 4
    try:
        margin.train()
        with pytest.raises(RuntimeError, match="eval mode"):
            margin.infer(torch.zeros(1, *SHAPE))
    finally:
        margin.eval()
        margin.thresholds = None


def test_single_exit(backbone: nn.Module) -> None:
    net = EarlyExitNetwork(backbone, SUBNET["d"], [], 10, False, SHAPE, thresholds=[]).eval()
    x = torch.randn(4, *SHAPE)
    res = net.infer(x, count_macs=True)
    assert (res.exits == 0).all() and res.macs is not None
    assert torch.equal(res.preds, backbone(x).argmax(1))
    assert net.exit_costs == net.inference_costs and len(net.exit_costs) == 1
