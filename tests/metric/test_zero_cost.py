"""Zero-cost proxies: hand-computed values on a tiny network, determinism, init modes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import nasx.metric as M
from nasx.data import FakeData
from nasx.metric.proxies.base import ZeroCostMetric
from nasx.objective import FlopsObjective, ParamsObjective
from nasx.search_space.base import Architecture
from nasx.search_space.nb201 import NB201Space
from nasx.supernet import build_supernet

W1 = [[1.0, -1.0], [0.5, 2.0]]
W2 = [[1.0, 2.0], [1.0, 1.0]]
X = [[1.0, 2.0], [2.0, -1.0], [1.0, 0.0]]
Y = [0, 1, 0]
PROXIES: list[type[ZeroCostMetric]] = [
    M.SynflowMetric,
    M.JacovMetric,
    M.NwotMetric,
    M.SnipMetric,
    M.GradNormMetric,
    M.GraspMetric,
    M.FisherMetric,
    M.EpeNasMetric,
    M.L2NormMetric,
]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(w1: list[list[float]] = W1, w2: list[list[float]] = W2) -> nn.Sequential:
    """``Linear -> ReLU -> Linear`` without biases, float64, fixed weights."""
    a, b = len(w1[0]), len(w1)
    first, last = nn.Linear(a, b, bias=False), nn.Linear(b, len(w2), bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.tensor(w1))
        last.weight.copy_(torch.tensor(w2))
    return nn.Sequential(first, nn.ReLU(), last).double().train()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(X, dtype=torch.float64), torch.tensor(Y)


def manual_backprop() -> dict[str, np.ndarray]:
    """Cross-entropy gradients of `tiny` by hand: no autograd involved."""
    w1, w2, x, y = np.array(W1), np.array(W2), np.array(X), np.array(Y)
    pre = x @ w1.T
    mask = (pre > 0).astype(float)
    h = pre * mask
    logits = h @ w2.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d_logits = (p - np.eye(2)[y]) / len(y)  # mean cross-entropy
    d_pre = (d_logits @ w2) * mask
    return {
        "pre": pre,
        "logits": logits,
        "d_logits": d_logits,
        "d_pre": d_pre,
        "g1": d_pre.T @ x,
        "g2": d_logits.T @ h,
    }


# --- hand-computed values --------------------------------------------------------------


def test_l2_norm_by_hand() -> None:
    # ||W1||_F = sqrt(1 + 1 + 0.25 + 4) = 2.5, ||W2||_F = sqrt(7)
    x, y = batch()
    assert M.L2NormMetric()._score(tiny(), x, y) == pytest.approx(2.5 + math.sqrt(7))


def test_synflow_by_hand_and_restores() -> None:
    # |W1| 1 = [2, 2.5]; out = |W2| [2, 2.5] = [7, 4.5]; each layer's sum |w dR/dw| = R = 11.5
    net = tiny()
    before = [p.detach().clone() for p in net.parameters()]
    x, y = batch()
    assert M.SynflowMetric()._score(net, x, y) == pytest.approx(23.0)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert all(p.dtype == torch.float64 for p in net.parameters())


def test_synflow_ignores_batchnorm() -> None:
    # NASLib scores synflow on a copy without BN; a BN in train mode on one input would zero it
    net = tiny()
    with_bn = nn.Sequential(net[0], nn.BatchNorm1d(2), net[1], net[2]).double().train()
    x, y = batch()
    assert M.SynflowMetric()._score(with_bn, x, y) == pytest.approx(23.0)
    assert isinstance(with_bn[1], nn.BatchNorm1d)


def test_snip_and_grad_norm_by_hand() -> None:
    g = manual_backprop()
    x, y = batch()
    snip = np.abs(np.array(W1) * g["g1"]).sum() + np.abs(np.array(W2) * g["g2"]).sum()
    assert M.SnipMetric()._score(tiny(), x, y) == pytest.approx(snip)
    norm = np.linalg.norm(g["g1"]) + np.linalg.norm(g["g2"])
    assert M.GradNormMetric()._score(tiny(), x, y) == pytest.approx(norm)


def test_grasp_is_minus_theta_hessian_gradient() -> None:
    x, y = batch()
    theta = torch.tensor([*sum(W1, []), *sum(W2, [])], dtype=torch.float64)

    def loss(t: torch.Tensor) -> torch.Tensor:
        w1, w2 = t[:4].view(2, 2), t[4:].view(2, 2)
        return nn.functional.cross_entropy(torch.relu(x @ w1.T) @ w2.T, y)

    g = torch.autograd.functional.jacobian(loss, theta)
    hess = torch.autograd.functional.hessian(loss, theta)
    expected = float(-(theta * (hess @ g)).sum())  # NASLib's sign: higher is better
    assert abs(expected) > 1e-3
    assert M.GraspMetric()._score(tiny(), x, y) == pytest.approx(expected)


def test_fisher_by_hand() -> None:
    g = manual_backprop()
    x, y = batch()
    # per output unit: 0.5 * mean_n (a * dL/da)^2, times fan-in 2 (NASLib broadcasts to weights)
    layer1 = 0.5 * ((g["pre"] * g["d_pre"]) ** 2).mean(0)
    layer2 = 0.5 * ((g["logits"] * g["d_logits"]) ** 2).mean(0)
    expected = 2 * layer1.sum() + 2 * layer2.sum()
    assert M.FisherMetric()._score(tiny(), x, y) == pytest.approx(expected)


def test_fisher_sums_conv_positions_and_counts_fan_in() -> None:
    conv = nn.Conv2d(1, 1, 2, bias=False).double()
    with torch.no_grad():
        conv.weight.fill_(1.0)
    net = nn.Sequential(conv, nn.Flatten()).train()  # 3x3 -> 2x2 = 4 logits
    x = torch.arange(9, dtype=torch.float64).view(1, 1, 3, 3)
    y = torch.tensor([3])
    a = net(x)
    p = torch.softmax(a, 1)
    d = p - nn.functional.one_hot(y, 4)
    expected = 4 * 0.5 * float((a * d).sum().detach()) ** 2  # fan-in 1*2*2
    assert M.FisherMetric()._score(net, x, y) == pytest.approx(expected)


def test_nwot_by_hand() -> None:
    # ReLU codes: x1 -> [0, 1], x2 -> [1, 0], x3 -> [1, 1]; K = 2 - Hamming
    x, y = batch()
    kernel = np.array([[2.0, 0, 1], [0, 2, 1], [1, 1, 2]])
    assert np.linalg.det(kernel) == pytest.approx(4.0)
    assert M.NwotMetric()._score(tiny(), x, y) == pytest.approx(math.log(4.0))


def _wide() -> tuple[nn.Sequential, np.ndarray, torch.Tensor, torch.Tensor]:
    """A 3-4-3 net, its input Jacobians by hand, and a batch of 5."""
    gen = torch.Generator().manual_seed(0)
    w1 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    w2 = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 2, 0])
    net = tiny(w1.tolist(), w2.tolist())
    mask = (x @ w1.T > 0).double()
    jac = (mask * w2.sum(0)) @ w1  # d sum_c f_c / dx = W1^T (mask * W2^T 1)
    return net, jac.numpy(), x, y


def test_jacov_by_hand() -> None:
    net, jac, x, y = _wide()
    v = np.linalg.eig(np.corrcoef(jac))[0].real  # NASLib uses eig
    expected = -np.sum(np.log(v + 1e-5) + 1.0 / (v + 1e-5))
    assert M.JacovMetric()._score(net, x, y) == pytest.approx(expected, rel=1e-6)


def test_epe_nas_by_hand() -> None:
    net, jac, x, y = _wide()
    c0 = np.corrcoef(jac[[0, 2, 4]])
    s0 = np.log(np.abs(c0) + 1e-5).sum()
    s1 = s2 = math.log(1 + 1e-5)  # one image: corrcoef of one row is 1
    expected = abs(s0) + abs(s1) + abs(s2)
    assert M.EpeNasMetric()._score(net, x, y) == pytest.approx(expected)


@pytest.mark.parametrize("cls", PROXIES, ids=lambda c: c.name)
def test_network_without_parameters_is_handled(cls: type[ZeroCostMetric]) -> None:
    x, y = batch()
    score = cls()._score(nn.Identity(), x[:, :2], y)
    if cls in (M.JacovMetric, M.EpeNasMetric, M.NwotMetric):
        # the definition has no value here (constant Jacobian rows / empty kernel)
        assert not math.isfinite(score)
    else:
        assert score == 0.0


@pytest.mark.parametrize(
    "cls", [M.SnipMetric, M.GradNormMetric, M.GraspMetric, M.FisherMetric], ids=str
)
def test_zero_gradient_scores_zero(cls: type[ZeroCostMetric]) -> None:
    net = tiny([[-1.0, -1.0], [-1.0, -1.0]])  # every ReLU is off for positive inputs
    x = torch.ones(3, 2, dtype=torch.float64)
    assert cls()._score(net, x, torch.tensor(Y)) == 0.0


# --- on a search space -----------------------------------------------------------------


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8)


@pytest.fixture(scope="module")
def ctx(space: NB201Space) -> M.MetricContext:
    data = FakeData(num_train=64, num_test=8)
    data.setup(8, 3)
    return M.MetricContext(space=space, supernet=None, data=data, runner=M.TorchRunner())


@pytest.fixture(scope="module")
def archs(space: NB201Space) -> list[Architecture]:
    rng = np.random.default_rng(0)
    a, b = space.sample(rng), space.sample(rng)
    assert a != b
    return [a, b]


def _run(m: M.Metric, arch: Architecture, ctx: M.MetricContext, seed: int = 1) -> float:
    return m(arch, ctx, torch.Generator().manual_seed(seed))[m.name]


@pytest.mark.parametrize("cls", PROXIES, ids=lambda c: c.name)
def test_deterministic_and_discriminative(
    cls: type[ZeroCostMetric], ctx: M.MetricContext, archs: list[Architecture]
) -> None:
    m = cls(batch_size=16)
    assert not m.needs_supernet and m.higher_is_better
    state = torch.get_rng_state()
    a1, a2, b = _run(m, archs[0], ctx), _run(m, archs[0], ctx), _run(m, archs[1], ctx)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone
    assert math.isfinite(a1) and a1 == a2 and a1 != b
    if cls is not M.L2NormMetric:  # only a different init or batch changes the others
        assert _run(m, archs[0], ctx, seed=2) != a1


def test_fresh_network_is_seeded_from_the_generator(
    space: NB201Space, ctx: M.MetricContext, archs: list[Architecture]
) -> None:
    seeds = torch.randint(0, 2**31 - 1, (2,), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(int(seeds[1]))
    net = space.build_network(archs[0])
    expected = sum(
        float(m.weight.detach().norm())
        for m in net.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    )
    assert _run(M.L2NormMetric(), archs[0], ctx) == pytest.approx(expected)


def test_batch_size_sets_the_minibatch(ctx: M.MetricContext, archs: list[Architecture]) -> None:
    seen: list[int] = []

    class Probe(ZeroCostMetric):
        name = "probe"

        def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
            seen.append(len(x))
            assert net.training and len(y) == len(x)
            return 0.0

    _run(Probe(batch_size=5), archs[0], ctx)
    _run(Probe(batch_size=1000), archs[0], ctx)  # capped at the training split (32 images)
    assert seen == [5, 32]


def test_inherited_uses_the_supernet(
    space: NB201Space, ctx: M.MetricContext, archs: list[Architecture]
) -> None:
    m = M.L2NormMetric(init="inherited")
    assert m.needs_supernet
    with pytest.raises(ValueError, match="supernet"):
        _run(m, archs[0], ctx)
    torch.manual_seed(5)
    supernet = build_supernet(space)
    sctx = M.MetricContext(space=space, supernet=supernet, data=ctx.data, runner=ctx.runner)
    net = supernet.extract(archs[0])
    expected = sum(
        float(m.weight.detach().norm())
        for m in net.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    )
    assert _run(m, archs[0], sctx) == pytest.approx(expected)
    snip = M.SnipMetric(batch_size=8, init="inherited")
    assert _run(snip, archs[0], sctx) == _run(snip, archs[0], sctx)
    assert _run(snip, archs[0], sctx) != _run(M.SnipMetric(batch_size=8), archs[0], ctx)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="init"):
        M.SnipMetric(init="pretrained")
    with pytest.raises(ValueError, match="batch_size"):
        M.SnipMetric(batch_size=0)


def test_params_and_flops_equal_the_objectives(
    space: NB201Space, ctx: M.MetricContext, archs: list[Architecture]
) -> None:
    for arch in archs:
        assert _run(M.ParamsMetric(), arch, ctx) == ParamsObjective()(arch, space)
        assert _run(M.FlopsMetric(), arch, ctx) == FlopsObjective()(arch, space)
    assert M.ParamsMetric.higher_is_better and M.FlopsMetric.higher_is_better
    assert not M.ParamsMetric.needs_supernet and not M.FlopsMetric.needs_supernet
