"""Input-Jacobian and activation-pattern proxies (NASWOT v1/v2, EPE-NAS), as in NASLib."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nasx.metric.proxies.base import ZeroCostMetric, forward_with_hooks

K_EPS = 1e-5


def input_jacobian(net: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, int]:
    """Rows ``d sum_c f_c(x_n) / d x_n`` flattened, as float64, and the output width."""
    xg = x.detach().clone().requires_grad_(True)
    net.zero_grad()
    out = net(xg)
    if out.requires_grad:
        out.backward(torch.ones_like(out))
    jac = xg.grad if xg.grad is not None else torch.zeros_like(xg)
    return jac.reshape(len(x), -1).detach().double().cpu().numpy(), int(out.shape[-1])


def jacov_score(jac: np.ndarray) -> float:
    """Mellor et al. v1 (NASLib ``jacov.py``): ``-sum_i log(v_i + k) + 1 / (v_i + k)``.

    ``v`` are the eigenvalues of the correlation matrix of the Jacobian rows, ``k = 1e-5``.

    ``eigvalsh`` replaces NASLib's ``eig`` (the matrix is symmetric; no complex round-off).
    Constant rows make the correlation undefined: NaN, which the evaluator marks as failed.
    """
    with np.errstate(all="ignore"):
        corrs = np.corrcoef(jac)
        if not np.all(np.isfinite(corrs)):
            return float("nan")
        v = np.linalg.eigvalsh(corrs)
        return float(-np.sum(np.log(v + K_EPS) + 1.0 / (v + K_EPS)))


def epe_score(jac: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Lopes et al. 2021 (NASLib ``epe_nas.py``): a per-class correlation score.

    Per class ``s_c = sum log(|corr_c| + k)`` over the correlation matrix of the class's
    Jacobian rows; the score is ``sum_c |s_c|`` for up to 100 classes,
    ``sum_{c,c'} |s_c - s_c'| / #classes`` beyond (where one-image classes are skipped, as the
    original's ``len()`` of a scalar fails). ``n_classes`` is the output width.
    """
    scores: list[float] = []
    with np.errstate(all="ignore"):
        for c in np.unique(labels):
            rows = jac[labels == c]
            if len(rows) == 1:
                if n_classes > 100:
                    continue
                scores.append(float(np.log(1.0 + K_EPS)))
                continue
            corrs = np.corrcoef(rows)
            s = float(np.sum(np.log(np.abs(corrs) + K_EPS)))
            if n_classes > 100:
                s /= len(corrs)
            scores.append(s)
    if n_classes <= 100:
        return float(sum(abs(s) for s in scores))
    if not scores:
        return 0.0
    return float(sum(abs(a - b) for a in scores for b in scores) / len(scores))


def relu_kernel(net: nn.Module, x: torch.Tensor) -> np.ndarray:
    """``K = sum_ReLU c c^T + (1-c)(1-c)^T`` with ``c`` the binary code ``pre-activation > 0``.

    ``K[i, j]`` is the number of units minus the Hamming distance between the codes of images
    i and j. Every module whose type name contains ``ReLU`` is hooked (NASLib ``nwot.py``).
    """
    n = len(x)
    kernel = torch.zeros((n, n), dtype=torch.float64)

    def hook(module: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
        code = (inp[0].detach().reshape(n, -1) > 0).double().cpu()
        kernel.add_(code @ code.t()).add_((1.0 - code) @ (1.0 - code).t())

    relus = [m for m in net.modules() if "ReLU" in type(m).__name__]
    forward_with_hooks(net, x, relus, hook, pre=True)
    return kernel.numpy()


class JacovMetric(ZeroCostMetric):
    """``jacov`` (NASWOT v1, Mellor et al. 2021): `jacov_score` of the input Jacobian."""

    name = "jacov"

    def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        return jacov_score(input_jacobian(net, x)[0])


class NwotMetric(ZeroCostMetric):
    """``nwot`` (NASWOT v2, Mellor et al. 2021): ``log|det K|`` of `relu_kernel`.

    ``-inf`` if ``K`` is singular (e.g. a network without ReLUs); the evaluator marks it failed.
    """

    name = "nwot"

    def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        return float(np.linalg.slogdet(relu_kernel(net, x))[1])


class EpeNasMetric(ZeroCostMetric):
    """``epe_nas`` (Lopes et al. 2021): `epe_score` of the input Jacobian and the labels."""

    name = "epe_nas"

    def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        jac, n_classes = input_jacobian(net, x)
        return epe_score(jac, y.detach().cpu().numpy(), n_classes)
