"""Training losses of early-exit networks: EDANAS's joint loss and NACHOS's four terms.

Reference ``seed-nsganetv2-cnas.md`` §6.3 (EDANAS ``joint_trainer``, ``joint_type='losses'``)
and §6.4 (NACHOS ``binary_bernulli_trainer``). Shapes: ``B`` samples, ``E`` exits (the final
classifier last), ``C`` classes. A binary intermediate exit outputs ``C + 1`` values, the last
one the logit of its confidence ``h_b = sigmoid(.)``; the final exit outputs ``C`` logits and
its confidence is fixed to 1 (the reference's ``fix_last_layer``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

#: confidences are clamped to ``[CLAMP, 1 - CLAMP]`` inside the BCE regulariser
CLAMP = 1e-4


def binary_outputs(outputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits (B, E, C), confidences h (B, E))`` of a binary early-exit forward.

    ``h`` holds the raw sigmoid confidences; the final exit's column is 1 (``fix_last_layer``).
    """
    *mid, last = outputs
    logits = torch.stack([o[:, :-1] for o in mid] + [last], dim=1).float()
    ones = torch.ones(last.shape[0], 1, device=last.device)
    if not mid:
        return logits, ones
    h = torch.sigmoid(torch.stack([o[:, -1] for o in mid], dim=1).float())
    return logits, torch.cat([h, ones], dim=1)


def exit_probabilities(h: torch.Tensor) -> torch.Tensor:
    """``p_b = h_b * prod_{j<b} (1 - h_j)`` per sample (``(B, E)``).

    With the last confidence fixed to 1 the rows sum to 1: the probability that a sample
    leaves at exit ``b`` when every exit lets it go with probability ``h``.
    """
    survive = torch.cumprod(1.0 - h[:, :-1], dim=1)
    return h * torch.cat([torch.ones_like(h[:, :1]), survive], dim=1)


def per_exit_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every exit for every sample, ``(B, E)``."""
    targets = y[:, None].expand(-1, logits.shape[1])
    return F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")


def classification_loss(logits: torch.Tensor, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """NACHOS's classification term (``joint_type='losses'``): ``sum_b mean_batch(p_b * CE_b)``."""
    return (per_exit_cross_entropy(logits, y) * p).mean(0).sum()


def correct_targets(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(B, E)`` float targets: 1 where exit ``b`` predicts the label (``prior_mode 'ones'``)."""
    return (logits.argmax(-1) == y[:, None]).float()


def balance_weights(targets: torch.Tensor) -> torch.Tensor:
    """Class-balanced BCE weights, counted per exit (column) of the ``(B, E)`` targets.

    A one weighs ``tot / (2 * ones)`` and a zero ``tot / (2 * zeros)``, ``tot`` the batch size.
    A count of zero only weighs elements that do not exist (the reference's ``inf`` there is
    multiplied by 0), so it is clamped to 1.
    """
    tot = float(targets.shape[0])
    ones = targets.sum(0, keepdim=True)
    w1 = tot / (2.0 * ones.clamp_min(1.0))
    w0 = tot / (2.0 * (tot - ones).clamp_min(1.0))
    return torch.where(targets > 0, w1, w0)


def bce_regulariser(h: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Class-balanced BCE between clamped confidences and "exit ``b`` predicts correctly".

    Averaged over the batch and the intermediate exits; the final exit (confidence fixed to 1)
    is excluded. Targets and weights carry no gradient. The BCE is written out (the same
    value as ``F.binary_cross_entropy``, which autocast refuses in mixed precision).
    """
    if h.shape[1] < 2:
        return h.new_zeros(())
    with torch.no_grad():
        t = correct_targets(logits, y)
        w = balance_weights(t)
    hc = h.clamp(CLAMP, 1.0 - CLAMP)
    bce = -(t * hc.log() + (1.0 - t) * (1.0 - hc).log()) * w
    return bce[:, :-1].mean()


def expected_macs(p: torch.Tensor, costs: Sequence[float]) -> torch.Tensor:
    """``E[MACs]``: the per-sample dot product of ``p`` with the exit costs, batch mean."""
    c = torch.as_tensor(list(costs), dtype=p.dtype, device=p.device)
    return (p @ c).mean()


def energy_loss(
    p: torch.Tensor, costs: Sequence[float], mmax: float | None, grad: bool = True
) -> torch.Tensor:
    """NACHOS's energy term ``max(0, E[MACs] - mmax) / |MACs_final - mmax|``.

    Zero when there is no limit or the full network already fits it (``costs[-1] <= mmax``).

    Args:
        p: exit probabilities `exit_probabilities`, ``(B, E)``.
        costs: M MACs per exit (backbone up to the exit plus its classifier), final last.
        mmax: the MAC limit (``None``: no limit).
        grad: ``True`` (nasx) back-propagates the violation into the confidences. ``False``
            reproduces the reference, which builds the loss from Python floats
            (``avg_macs.item()``) into a fresh tensor: the term is logged and added to the
            total but moves no weight.
    """
    if mmax is None or costs[-1] <= mmax:
        return p.new_zeros(())
    scale = abs(costs[-1] - mmax)
    if not grad:
        violation = max(0.0, float(expected_macs(p.detach(), costs)) - mmax)
        return torch.tensor(violation / scale, dtype=p.dtype, device=p.device)
    return torch.clamp(expected_macs(p, costs) - mmax, min=0.0) / scale


@torch.no_grad()
def support_matrix(logits: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``S[class, exit]``: each exit's accuracy on the support samples of each class.

    ``logits`` are the class logits ``(N, E, C)`` of the support subset; a class without
    support samples gets a row of zeros.
    """
    correct = correct_targets(logits, y)
    sums = torch.zeros(n_classes, logits.shape[1], device=logits.device)
    sums.index_add_(0, y, correct)
    counts = torch.bincount(y, minlength=n_classes)[:n_classes].clamp_min(1)
    return sums / counts[:, None].to(sums.dtype)


def support_loss(h: torch.Tensor, y: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``MSE(h(x), S[y])``, over every exit.

    ``h`` are the raw sigmoid confidences (not the normalised ``p``), the final exit's 1
    included: each exit's confidence is pulled towards that exit's accuracy on the sample's
    class. The reference passes a ``(E,)`` row of ``S`` and a ``(E, 1)`` confidence column to
    ``mse_loss``, which broadcasts them to ``E x E`` and averages ``(S[y, a] - h_b)^2`` over
    every pair: each confidence is pulled towards the class's accuracy averaged over all
    exits. nasx computes the intended per-exit MSE.
    """
    return ((h - support[y].to(h.dtype)) ** 2).mean()


def joint_loss(
    logits: Sequence[torch.Tensor], y: torch.Tensor, weights: Sequence[float] | None = None
) -> torch.Tensor:
    """EDANAS's joint loss ``sum_{b<last} w_b * CE_b + CE_last`` (``w_b = 1`` by default)."""
    *mid, last = logits
    w = [1.0] * len(mid) if weights is None else list(weights)[: len(mid)]
    loss = F.cross_entropy(last, y)
    for wb, out in zip(w, mid, strict=True):
        loss = loss + wb * F.cross_entropy(out, y)
    return loss


@dataclass(frozen=True)
class NachosLoss:
    """NACHOS's total loss and its terms (each a scalar tensor)."""

    total: torch.Tensor
    classification: torch.Tensor
    bce: torch.Tensor
    energy: torch.Tensor
    support: torch.Tensor


def nachos_loss(
    outputs: Sequence[torch.Tensor],
    y: torch.Tensor,
    costs: Sequence[float],
    *,
    w_alpha: float = 1.0,
    w_beta: float = 1.0,
    w_gamma: float = 1.0,
    mmax: float | None = None,
    energy_grad: bool = True,
    support: torch.Tensor | None = None,
) -> NachosLoss:
    """``w_alpha * classification + BCE + w_beta * energy + w_gamma * support``.

    Args:
        outputs: every exit's output (`binary_outputs` layout).
        y: labels.
        costs: M MACs per exit, final last.
        w_alpha: the weight of the classification term.
        w_beta: the weight of the energy term.
        w_gamma: the weight of the support term.
        mmax: the MAC limit of the energy term (``None``: no energy term).
        energy_grad: see `energy_loss`.
        support: the epoch's support matrix ``S`` (``None``: before ``n_epoch_gamma`` or
            without a support set, no support term).
    """
    logits, h = binary_outputs(outputs)
    p = exit_probabilities(h)
    cls = classification_loss(logits, y, p)
    bce = bce_regulariser(h, logits, y)
    energy = energy_loss(p, costs, mmax, grad=energy_grad)
    sup = support_loss(h, y, support) if support is not None else h.new_zeros(())
    total = w_alpha * cls + bce + w_beta * energy + w_gamma * sup
    return NachosLoss(total, cls, bce, energy, sup)
