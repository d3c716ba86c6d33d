"""SWAP: the number of distinct sample-wise activation patterns, and its regularised form.

Peng et al., ICLR 2024, "SWAP-NAS: Sample-Wise Activation Patterns for Ultra-fast NAS". Every
neuron after a ReLU has, over a batch of ``S`` samples, a binary pattern (on/off per sample);
``SWAP = |{patterns}|``, the number of distinct ones. The regularised score multiplies it by
``f(Theta) = exp(-(Theta - mu)^2 / sigma)`` of the model size ``Theta``. Higher is better.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nasx.metric.proxies.base import ZeroCostMetric, forward_with_hooks

#: bits packed per int64 code word (the sign bit left free)
_WORD = 62


def activation_patterns(net: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """``(neurons, samples)`` booleans ``output > 0`` of every ``nn.ReLU``, or ``None``.

    As the official ``src/metrics/swap.py``: a forward hook on every ``nn.ReLU`` module takes its
    output, flattened per sample, and the sign of the concatenation (a ReLU output is 0 or
    positive, so the sign is the on/off state). The official hook keeps only ReLUs whose input
    has 4 dims (convolutional maps); here ReLUs on any input count, which is the same on the
    convolutional search spaces. ``None`` when no ReLU ran (the score is then undefined).
    """
    n = len(x)
    codes: list[torch.Tensor] = []

    def hook(module: nn.Module, inp: object, out: torch.Tensor) -> None:
        codes.append((out.detach().reshape(n, -1) > 0).cpu())

    forward_with_hooks(net, x, [m for m in net.modules() if isinstance(m, nn.ReLU)], hook)
    if not codes:
        return None
    return torch.cat(codes, dim=1).t()


def count_unique_patterns(patterns: torch.Tensor) -> int:
    """The number of distinct rows of a ``(neurons, samples)`` boolean matrix.

    Rows are packed into int64 words of 62 samples each before ``torch.unique(dim=0)`` (the
    official code runs it on the float matrix; the count is the same).
    """
    rows, samples = patterns.shape
    if rows == 0:
        return 0
    words = math.ceil(samples / _WORD)
    packed = torch.zeros((rows, words), dtype=torch.int64)
    for s in range(samples):
        packed[:, s // _WORD] |= patterns[:, s].to(torch.int64) << (s % _WORD)
    return int(torch.unique(packed, dim=0).shape[0])


def size_factor(params_k: float, mu: float, sigma: float) -> float:
    """The paper's regularisation ``exp(-(params_k - mu)^2 / sigma)``.

    ``params_k`` is the model size in thousands of parameters, as the official
    ``count_parameters`` (all parameters but ``auxiliary`` ones, / 1e3); ``sigma`` divides the
    squared difference directly (it is a variance-like width, not a standard deviation).
    """
    return math.exp(-((params_k - mu) ** 2) / sigma)


def model_size_k(net: nn.Module) -> float:
    """Parameters of ``net`` in thousands, leaving out ``auxiliary`` heads (official code)."""
    return sum(p.numel() for n, p in net.named_parameters() if "auxiliary" not in n) / 1e3


class SwapMetric(ZeroCostMetric):
    """``swap`` (Peng et al. 2024): `count_unique_patterns` of `activation_patterns`.

    One network and one batch: the official correlation script averages the score over 32
    Gaussian re-initialisations (``network_weight_gaussian_init``, N(0, 1) weights) of its
    batch of 16 (``--input_samples``); this class scores the space's own initialisation once,
    like the other proxies, on ``batch_size`` images (16 in ``conf/metric/swap.yaml``). NaN for
    a network without ReLUs.
    """

    name = "swap"

    def __init__(self, batch_size: int = 16, init: str = "fresh") -> None:
        super().__init__(batch_size=batch_size, init=init)

    def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        patterns = activation_patterns(net, x)
        if patterns is None:
            return float("nan")
        return float(count_unique_patterns(patterns))


class SwapRegMetric(SwapMetric):
    """``swap_reg``: `SwapMetric`'s score times `size_factor` of the scored network.

    Args:
        batch_size: images of the one minibatch (see `ZeroCostMetric`).
        init: ``fresh`` or ``inherited`` (see `ZeroCostMetric`).
        mu: the favoured model size, in thousands of parameters (the curve's centre).
        sigma: the width, in squared thousands of parameters (``f = exp(-(P - mu)^2 / sigma)``).
    """

    name = "swap_reg"

    def __init__(self, mu: float, sigma: float, batch_size: int = 16, init: str = "fresh") -> None:
        super().__init__(batch_size=batch_size, init=init)
        if not sigma > 0:
            raise ValueError(f"metric.sigma must be > 0, got {sigma}")
        self.mu, self.sigma = float(mu), float(sigma)

    def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        return super()._score(net, x, y) * size_factor(model_size_k(net), self.mu, self.sigma)
