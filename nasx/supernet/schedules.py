"""Learning-rate schedules the seeds use that torch does not ship as such.

Each is a ``LambdaLR`` over the optimiser's initial learning rate; torch's own schedulers
(``CosineAnnealingLR`` ...) are used directly wherever one matches.
"""

from __future__ import annotations

import math
from functools import partial

import torch


def _initial_lr(optimizer: torch.optim.Optimizer) -> float:
    group = optimizer.param_groups[0]
    return float(group.get("initial_lr", group["lr"]))


def _shifted(epoch: int, lr: float, epochs: int, eta_min: float) -> float:
    e = min(epoch + 1, epochs)
    return (eta_min + (lr - eta_min) * (1 + math.cos(math.pi * e / epochs)) / 2) / lr


def step_first_cosine(
    optimizer: torch.optim.Optimizer, T_max: int, eta_min: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch cosine stepped *before* each epoch, as GeNAS/RLNAS DARTS call it.

    Epoch e trains at the cosine's value for e + 1, so the first epoch never sees the initial
    learning rate (the original code's quirk; ``CosineAnnealingLR`` is the usual schedule).
    Its arguments are ``CosineAnnealingLR``'s, so only the ``_target_`` changes in a config.
    """
    lr = _initial_lr(optimizer)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(_shifted, lr=lr, epochs=T_max, eta_min=eta_min)
    )


def _linear(step: int, lr: float, total: int, eta_min: float) -> float:
    frac = min(step, total) / max(total, 1)
    return (eta_min + (lr - eta_min) * (1.0 - frac)) / lr


def linear_decay(
    optimizer: torch.optim.Optimizer, T_max: int, steps_per_epoch: int, eta_min: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear decay per iteration from the initial rate to ``eta_min`` over ``T_max`` epochs.

    RLNAS's MobileNet supernet (lr 0.25 to 5e-4 over 120 epochs) and its retraining (0.5 to
    0); used with ``supernet.scheduler_interval=step``, which passes ``steps_per_epoch``.
    ``T_max`` is in epochs, as for ``CosineAnnealingLR``, so only the ``_target_`` changes.
    """
    lr = _initial_lr(optimizer)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(_linear, lr=lr, total=T_max * steps_per_epoch, eta_min=eta_min)
    )


def _warmup_linear(epoch: int, epochs: int, warmup: int, floor: float) -> float:
    tail = epochs - warmup
    factor = (tail - epoch) / tail if epoch < tail else (epochs - epoch) / (tail * warmup)
    if epoch < warmup:
        factor *= (epoch + 1) / warmup
    return max(factor, floor)


def warmup_linear(
    optimizer: torch.optim.Optimizer, T_max: int, warmup: int = 5, eta_min: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """GeNAS/RLNAS ImageNet retraining's per-epoch schedule (``retrain.py`` ``adjust_lr``).

    With E = ``T_max`` epochs and w = ``warmup``: lr(e) = lr · (E − w − e) / (E − w) while
    e < E − w, then lr · (E − e) / ((E − w) · w); the first w epochs are also multiplied by
    (e + 1) / w (reference seed-genas-rlnas.md A.4). The rate never falls below ``eta_min``
    (0: none, as the reference).
    """
    if not 0 <= warmup < T_max:
        raise ValueError(f"warmup={warmup} must be in [0, T_max={T_max})")
    floor = eta_min / _initial_lr(optimizer)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(_warmup_linear, epochs=T_max, warmup=max(warmup, 1), floor=floor)
    )
