"""MeCo, SWAP and ZiCo: hand-computed values on tiny networks, determinism, configs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch import nn

import nasx.metric as M
from nasx.data import FakeData
from nasx.metric.proxies.base import ZeroCostMetric
from nasx.metric.proxies.correlation import meco_score, min_eig_correlation
from nasx.metric.proxies.patterns import activation_patterns, count_unique_patterns
from nasx.metric.proxies.zico import zico_score
from nasx.search_space.base import Architecture, SearchSpace
from nasx.search_space.darts import DartsSpace
from nasx.search_space.nb201 import NB201Space

pytestmark = pytest.mark.usefixtures("one_thread")

#: two channels of one 2x2 map with Pearson correlation 0.8 (deviations -1.5 -.5 .5 1.5 and
#: -1.5 .5 -.5 1.5: covariance 4 over variances 5), so lambda_min = 1 - 0.8
C0, C1 = [[1.0, 2.0], [3.0, 4.0]], [[1.0, 3.0], [2.0, 4.0]]


def two_channel_batch() -> torch.Tensor:
    """Sample 0 holds `C0`/`C1`; sample 1 is unrelated noise (MeCo scores sample 0 only)."""
    other = torch.tensor([[[5.0, -1.0], [0.0, 2.0]], [[-3.0, 1.0], [1.0, 7.0]]])
    return torch.stack([torch.tensor([C0, C1]), other]).double()


# --- MeCo ------------------------------------------------------------------------------


def test_meco_min_eigenvalue_by_hand() -> None:
    # 2x2 correlation [[1, r], [r, 1]] has eigenvalues 1 +- r
    assert min_eig_correlation(torch.tensor([C0, C1])) == pytest.approx(0.2)
    # a constant channel has no correlation: its NaN row/column is zeroed (official), so 0
    with_const = torch.tensor([C0, C1, [[5.0, 5.0], [5.0, 5.0]]])
    assert min_eig_correlation(with_const) == pytest.approx(0.0, abs=1e-12)
    # one value per channel (a pooled map): every entry NaN, zeroed
    assert min_eig_correlation(torch.ones(4, 1, 1)) == 0.0


def test_meco_sums_every_module_map_of_sample_zero() -> None:
    x = two_channel_batch()
    # the Sequential and the Identity inside it both return the map: two hooks, as officially
    assert meco_score(nn.Sequential(nn.Identity()), x) == pytest.approx(2 * 0.2)
    # vector outputs are not feature maps: the conv map counts, the flattened one does not
    conv = nn.Conv2d(2, 2, 1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -2.0]]).view(2, 2, 1, 1))
    # conv map: channels C0 and -2*C1, correlation -0.8: lambda_min = 1 - |-0.8|
    net = nn.Sequential(conv, nn.Flatten())
    assert meco_score(net, x) == pytest.approx(0.2)
    assert M.MecoMetric()._score(net, x, torch.zeros(2, dtype=torch.long)) == pytest.approx(0.2)


def test_meco_without_feature_maps_scores_zero() -> None:
    # the official sum over an empty list of layers
    assert meco_score(nn.Linear(3, 2), torch.ones(2, 3)) == 0.0


# --- SWAP ------------------------------------------------------------------------------

SWAP_X = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, -1.0]]


def relu_net() -> nn.Sequential:
    """``Linear(2, 3) -> ReLU -> Linear(3, 1) -> ReLU`` without biases, fixed weights."""
    first, last = nn.Linear(2, 3, bias=False), nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]))
        last.weight.copy_(torch.tensor([[1.0, 1.0, 1.0]]))
    return nn.Sequential(first, nn.ReLU(), last, nn.ReLU()).double()


def test_swap_patterns_by_hand() -> None:
    # pre-activations per neuron over the 4 samples: [1,0,1,-1], [0,1,1,-1], [2,0,2,-2], and
    # the second layer's [3,1,4,0]: patterns 1010, 0110, 1010 (a repeat), 1110 -> 3 distinct
    x = torch.tensor(SWAP_X, dtype=torch.float64)
    patterns = activation_patterns(relu_net(), x)
    assert patterns is not None
    want = [[1, 0, 1, 0], [0, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0]]
    assert patterns.int().tolist() == want
    assert M.SwapMetric()._score(relu_net(), x, torch.zeros(4, dtype=torch.long)) == 3.0


def test_swap_counts_like_unique_on_the_sign_matrix() -> None:
    # more samples than one packed word holds (62): compare with the official unique(dim=0)
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(40, 130, generator=gen) > 0.5
    patterns = torch.cat([base, base[:15], base[3:9]])  # 21 repeated rows
    assert count_unique_patterns(patterns) == 40
    assert count_unique_patterns(patterns) == torch.unique(patterns.float(), dim=0).shape[0]
    assert count_unique_patterns(torch.zeros(0, 5, dtype=torch.bool)) == 0


def test_swap_reg_multiplies_the_size_factor() -> None:
    # 6 + 3 = 9 parameters = 0.009 thousand; exp(-(0.009 - 0.011)^2 / 1e-6) = exp(-4)
    x = torch.tensor(SWAP_X, dtype=torch.float64)
    y = torch.zeros(4, dtype=torch.long)
    m = M.SwapRegMetric(mu=0.011, sigma=1e-6)
    assert m.name == "swap_reg"
    assert m._score(relu_net(), x, y) == pytest.approx(3.0 * math.exp(-4.0))
    assert M.SwapRegMetric(mu=0.009, sigma=1.0)._score(relu_net(), x, y) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="sigma"):
        M.SwapRegMetric(mu=1.0, sigma=0.0)


def test_swap_without_relu_is_undefined() -> None:
    x = torch.tensor(SWAP_X, dtype=torch.float64)
    score = M.SwapMetric()._score(nn.Linear(2, 2).double(), x, torch.zeros(4, dtype=torch.long))
    assert math.isnan(score)  # the official code returns None: the evaluator marks it failed


# --- ZiCo ------------------------------------------------------------------------------


def linear_net() -> nn.Linear:
    layer = nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 2.0]]))
    return layer


#: the second input is 0 everywhere, so W[:, 1] gets no gradient in either batch (std 0)
ZICO_X = [[1.0, 0.0], [2.0, 0.0], [0.5, 0.0], [-1.0, 0.0]]
ZICO_Y = [0, 1, 1, 0]


def test_zico_by_hand_on_a_linear_layer() -> None:
    w = np.array([[1.0, -1.0], [0.5, 2.0]])
    grads = []
    for rows in ([0, 1], [2, 3]):  # two mini-batches of 2, in order
        x, y = np.array(ZICO_X)[rows], np.array(ZICO_Y)[rows]
        logits = x @ w.T
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grads.append(((p - np.eye(2)[y]) / len(y)).T @ x)  # d mean-CE / dW
    g1, g2 = grads[0][:, 0], grads[1][:, 0]  # column 1 is zero in both batches: left out
    ratio = ((np.abs(g1) + np.abs(g2)) / 2) / (np.abs(g1 - g2) / 2)  # population std of 2
    expected = math.log(ratio.sum())
    x_t, y_t = torch.tensor(ZICO_X, dtype=torch.float64), torch.tensor(ZICO_Y)
    m = M.ZicoMetric(batch_size=2, n_batches=2)
    assert m.batch_size == 4  # the images drawn for both mini-batches
    assert m._score(linear_net(), x_t, y_t) == pytest.approx(expected)


def test_zico_moments_and_skipped_layers() -> None:
    g = np.array([[1.0, 2.0, 0.0], [3.0, 2.0, 0.0], [-1.0, 2.0, 0.0]])
    # weight 0: mean|g| 5/3, std sqrt(8/3); weights 1 and 2 have std 0 and are left out
    assert zico_score([g]) == pytest.approx(math.log((5 / 3) / math.sqrt(8 / 3)))
    assert zico_score([np.zeros((2, 4)), g]) == zico_score([g])  # all-zero layer skipped
    assert zico_score([]) == 0.0


def test_zico_needs_two_batches() -> None:
    with pytest.raises(ValueError, match="n_batches"):
        M.ZicoMetric(n_batches=1)
    x, y = torch.tensor(ZICO_X, dtype=torch.float64), torch.tensor(ZICO_Y)
    assert math.isnan(M.ZicoMetric(batch_size=2)._score(linear_net(), x[:1], y[:1]))


def test_zico_zero_gradient_scores_zero() -> None:
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(-1.0)  # every ReLU off for positive inputs: no weight gradient
    x, y = torch.ones(4, 2), torch.tensor(ZICO_Y)
    assert M.ZicoMetric(batch_size=2)._score(net, x, y) == 0.0


# --- on the search spaces --------------------------------------------------------------

NEW: list[ZeroCostMetric] = [
    M.MecoMetric(),
    M.SwapMetric(batch_size=8),
    M.SwapRegMetric(mu=20.0, sigma=400.0, batch_size=8),
    M.ZicoMetric(batch_size=4),
]


def _ctx(space: SearchSpace) -> M.MetricContext:
    data = FakeData(num_train=64, num_test=8, num_classes=4)
    data.setup(8, 3)
    return M.MetricContext(space=space, supernet=None, data=data, runner=M.TorchRunner())


@pytest.fixture(scope="module")
def nb201() -> tuple[M.MetricContext, list[Architecture]]:
    space = NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8)
    rng = np.random.default_rng(0)
    return _ctx(space), [space.sample(rng), space.sample(rng)]


def _run(m: M.Metric, arch: Architecture, ctx: M.MetricContext, seed: int = 1) -> float:
    return m(arch, ctx, torch.Generator().manual_seed(seed))[m.name]


@pytest.mark.parametrize("m", NEW, ids=lambda m: m.name)
def test_deterministic_and_discriminative(
    m: ZeroCostMetric, nb201: tuple[M.MetricContext, list[Architecture]]
) -> None:
    ctx, archs = nb201
    assert not m.needs_supernet and m.higher_is_better
    state = torch.get_rng_state()
    a1, a2, b = _run(m, archs[0], ctx), _run(m, archs[0], ctx), _run(m, archs[1], ctx)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone
    assert math.isfinite(a1) and a1 == a2 and a1 != b
    assert _run(m, archs[0], ctx, seed=2) != a1  # another init and batch


@pytest.mark.parametrize("m", NEW, ids=lambda m: m.name)
def test_scores_a_darts_network(m: ZeroCostMetric) -> None:
    space = DartsSpace(num_classes=4, channels=4, layers=3, image_size=8, net_channels=8)
    arch = space.sample(np.random.default_rng(0))
    assert math.isfinite(_run(m, arch, _ctx(space)))


def test_inherited_needs_a_supernet(nb201: tuple[M.MetricContext, list[Architecture]]) -> None:
    ctx, archs = nb201
    for m in (M.MecoMetric(init="inherited"), M.ZicoMetric(init="inherited")):
        assert m.needs_supernet
        with pytest.raises(ValueError, match="supernet"):
            _run(m, archs[0], ctx)


@pytest.mark.parametrize(
    ("option", "cls"),
    [
        ("meco", M.MecoMetric),
        ("swap", M.SwapMetric),
        ("swap_reg", M.SwapRegMetric),
        ("zico", M.ZicoMetric),
    ],
)
def test_config_composes_and_instantiates(compose_cfg, option: str, cls: type) -> None:
    metric = instantiate(compose_cfg(f"metric={option}").metric)
    assert type(metric) is cls and metric.name == option
    assert metric.higher_is_better and not metric.needs_supernet and metric.init == "fresh"
