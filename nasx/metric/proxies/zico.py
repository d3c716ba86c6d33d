"""ZiCo: the inverse coefficient of variation of the weight gradients over mini-batches.

Li et al., ICLR 2023, "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients":
``ZiCo = sum_l log( sum_{theta in layer l} E[|g_theta|] / sqrt(Var[g_theta]) )`` with ``g`` the
gradient of the cross-entropy of one mini-batch and the moments taken over the mini-batches.
Higher is better.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasx.metric.proxies.base import ZeroCostMetric, prunable_layers, weight_grad


def batch_gradients(
    net: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> list[np.ndarray]:
    """Per `prunable_layers` layer, the ``(batches, weights)`` float64 weight gradients.

    The gradients are zeroed before each mini-batch (the paper's per-batch gradients; the
    official ``getzico`` never calls ``zero_grad`` and so records running sums). A layer that
    gets no gradient records zeros (NASLib's fallback).
    """
    layers = list(prunable_layers(net))
    grads: list[list[np.ndarray]] = [[] for _ in layers]
    for x, y in batches:
        net.zero_grad()
        loss = F.cross_entropy(net(x), y)
        if loss.requires_grad:
            loss.backward()
        for rows, layer in zip(grads, layers, strict=True):
            rows.append(weight_grad(layer).detach().reshape(-1).double().cpu().numpy())
    return [np.stack(rows) for rows in grads]


def zico_score(grads: list[np.ndarray]) -> float:
    """``sum_l log(sum_i mean_b |g_bi| / std_b g_bi)`` over the weights of nonzero std.

    As the official ``caculate_zico``: ``np.std`` (population, ddof 0) over the batches; only the
    weights whose std is nonzero enter a layer's sum, and a layer whose sum is 0 (every weight's
    gradient is the same in every batch, e.g. all zero) is skipped. 0.0 if every layer is.
    """
    total = 0.0
    for g in grads:
        std = g.std(axis=0)
        keep = std != 0
        ratio_sum = float(np.sum(np.abs(g[:, keep]).mean(axis=0) / std[keep]))
        if ratio_sum != 0:
            total += float(np.log(ratio_sum))
    return total


class ZicoMetric(ZeroCostMetric):
    """``zico`` (Li et al. 2023): `zico_score` of the gradients of ``n_batches`` mini-batches.

    As the official code, the weights of every ``nn.Conv2d`` and ``nn.Linear`` (no biases, no
    BN) with the cross-entropy loss, the network in train mode. The ``n_batches * batch_size``
    images are the first the seeded training loader yields, split in order.

    Args:
        batch_size: images per mini-batch.
        n_batches: mini-batches (at least 2: the std over one batch is 0 everywhere).
        init: ``fresh`` or ``inherited`` (see `ZeroCostMetric`).
    """

    name = "zico"

    def __init__(self, batch_size: int = 64, n_batches: int = 2, init: str = "fresh") -> None:
        if n_batches < 2:
            raise ValueError(f"metric.n_batches must be >= 2, got {n_batches}")
        super().__init__(batch_size=batch_size, init=init)
        self.n_batches = n_batches
        self.batch_size = batch_size * n_batches  # the images `_compute` draws

    def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        size = -(-len(x) // self.n_batches)  # fewer images than asked: smaller batches
        batches = list(zip(x.split(size), y.split(size), strict=True))
        if len(batches) < 2:
            return float("nan")  # one image: no variance over batches
        return zico_score(batch_gradients(net, batches))
