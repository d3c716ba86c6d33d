"""MeCo: the minimum eigenvalue of the channel correlation of every feature map.

Jiang et al., NeurIPS 2023, "MeCo: Zero-Shot NAS with One Data and Single Forward Pass via
Minimum Eigenvalue of Correlation": ``MeCo = sum_l lambda_min(P(f_l(x)))`` with ``f_l(x)`` the
feature map of layer ``l`` for one image, reshaped to (channels, H*W), and ``P`` its Pearson
correlation matrix between channels. Higher is better.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nasx.metric.proxies.base import ZeroCostMetric, forward_with_hooks


def min_eig_correlation(fmap: torch.Tensor) -> float:
    """``lambda_min`` of the Pearson correlation between the channels of one feature map.

    ``fmap`` is one sample's map, channels first (``(C, H, W)`` or any ``(C, ...)``); it is
    flattened to ``(C, H*W)`` and correlated in float64. As the official code, entries that are
    NaN or infinite (a constant channel has no correlation) are set to 0 before the eigenvalues;
    ``eigvalsh`` replaces the official ``torch.linalg.eig`` (the matrix is symmetric).
    """
    fea = fmap.detach().reshape(fmap.shape[0], -1).double().cpu().numpy()
    if fea.shape[1] < 2:
        return 0.0  # one value per channel (a pooled map): every correlation is NaN, zeroed
    with np.errstate(all="ignore"):
        corr = np.atleast_2d(np.corrcoef(fea))
    corr[~np.isfinite(corr)] = 0.0
    return float(np.linalg.eigvalsh(corr)[0])


def meco_score(net: nn.Module, x: torch.Tensor, sample: int = 0) -> float:
    """``sum`` of `min_eig_correlation` over the feature maps of one forward pass of ``x``.

    As the official ``correlation/NAS_Bench_201.py`` (``get_score``, measure ``meco``), a hook
    sits on every module, containers and the network itself included, so a map that two nested
    modules return counts twice (e.g. an op's BN and the op around it); each hook takes the map
    of sample ``sample`` of the batch. The official hooks also see vector outputs (pooled
    features, logits) but those give an all-NaN matrix there, zeroed, so 0: only outputs with at
    least 3 dims (batch, channels, spatial...) are scored here. Non-finite layer values are
    dropped and a network without any feature map scores 0.0, as there.
    """
    values: list[float] = []

    def hook(module: nn.Module, inp: object, out: object) -> None:
        if isinstance(out, torch.Tensor) and out.dim() >= 3:
            values.append(min_eig_correlation(out[sample]))

    forward_with_hooks(net, x, net.modules(), hook)
    return float(sum(v for v in values if np.isfinite(v)))


class MecoMetric(ZeroCostMetric):
    """``meco`` (Jiang et al. 2023): `meco_score` of one image, in train mode.

    The official NAS-Bench-201 script scores one training image (``--batch_size 1``) on the
    network in train mode (BN on that image's statistics) with PyTorch's default
    initialisation; ``batch_size: 1`` in ``conf/metric/meco.yaml`` does the same. With a larger
    batch the first image's maps are scored (BN then uses the batch's statistics). The
    ``MeCo_opt`` variant (8 random channels per map, scaled by C/8) is not implemented.
    """

    name = "meco"

    def __init__(self, batch_size: int = 1, init: str = "fresh") -> None:
        super().__init__(batch_size=batch_size, init=init)

    def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        return meco_score(net, x)
