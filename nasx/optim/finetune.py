"""Fine-tuning a candidate network before it is scored (FlatNAS trains each candidate).

The step logic is plain PyTorch (`make_optimizer`, `training_step`); `finetune` is the bare
loop, and `nasx.lit.evaluation.LightningRunner.finetune` runs the same step inside a Lightning
loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from nasx.optim.sam import SAM

OPTIMIZERS = ("sgd", "sam", "asam")
#: learning-rate schedules of candidate fine-tuning (`FinetuneSpec.schedule`)
SCHEDULES = ("cosine", "cnas_per_batch")


@dataclass(frozen=True)
class FinetuneSpec:
    """How a candidate is fine-tuned. Defaults are FlatNAS's (``scripts/search_flatnas.sh``).

    Attributes:
        epochs: passes over the (possibly limited) training loader; 0 disables fine-tuning.
        optimizer: ``sgd``, ``sam`` or ``asam`` (SAM with ``adaptive=True``).
        lr: base SGD learning rate.
        schedule: ``cosine`` (default, the intended schedule): a cosine from ``lr`` to 0 over
            all steps. ``cnas_per_batch``: CNAS/FlatNAS as the code runs it
            (``train_utils.py``, reference notes §6.8): torch's ``CosineAnnealingLR(T_max=
            epochs, eta_min=0)`` stepped after every *batch*, so the rate oscillates between
            ``lr`` and 0 with a period of ``2 * epochs`` batches.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        nesterov: Nesterov momentum.
        rho: SAM/ASAM neighbourhood radius.
        max_batches: stop each epoch after this many batches (``None``: the whole loader).
    """

    epochs: int = 1
    optimizer: str = "asam"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-5
    nesterov: bool = False
    rho: float = 2.0
    max_batches: int | None = None
    schedule: str = "cosine"

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"fine-tuning epochs must be >= 0, got {self.epochs}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown fine-tuning optimizer {self.optimizer!r}: use one of {OPTIMIZERS}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"unknown fine-tuning schedule {self.schedule!r}: use one of {SCHEDULES}"
            )
        if self.lr <= 0 or self.rho < 0 or self.weight_decay < 0 or self.momentum < 0:
            raise ValueError("fine-tuning lr must be > 0 and rho, momentum, weight_decay >= 0")
        if self.max_batches is not None and self.max_batches < 1:
            raise ValueError(f"fine-tuning max_batches must be >= 1, got {self.max_batches}")

    def steps(self, loader: DataLoader[Any]) -> int:
        """Total optimiser steps over ``loader``."""
        per_epoch = len(loader) if self.max_batches is None else min(len(loader), self.max_batches)
        return self.epochs * per_epoch


def make_optimizer(
    params: Any, spec: FinetuneSpec, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The optimiser of ``spec`` and its schedule, stepped once per batch (`FinetuneSpec`)."""
    sgd: dict[str, Any] = dict(
        lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay, nesterov=spec.nesterov
    )
    opt: torch.optim.Optimizer
    if spec.optimizer == "sgd":
        opt = torch.optim.SGD(params, **sgd)
    else:
        opt = SAM(params, torch.optim.SGD, rho=spec.rho, adaptive=spec.optimizer == "asam", **sgd)
    # SAM steps through its base optimiser, which shares the parameter groups: the schedule
    # is attached there so that it sees every step
    stepped = opt.base_optimizer if isinstance(opt, SAM) else opt
    sched: torch.optim.lr_scheduler.LRScheduler
    if spec.schedule == "cnas_per_batch":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(stepped, T_max=spec.epochs, eta_min=0)
        return opt, sched
    sched = torch.optim.lr_scheduler.LambdaLR(
        stepped, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / max(total_steps, 1)))
    )
    return opt, sched


def training_step(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    opt: torch.optim.Optimizer,
    backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
) -> float:
    """One update (two forward/backward passes for SAM/ASAM); returns the first pass's loss.

    ``backward`` lets a Lightning module pass its ``manual_backward`` (precision, strategies).
    """
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(net(x), y)
    backward(loss)
    if isinstance(opt, SAM):
        opt.first_step()
        opt.zero_grad(set_to_none=True)
        backward(nn.functional.cross_entropy(net(x), y))
        opt.second_step()
    else:
        opt.step()
    return float(loss.detach())


def finetune(
    net: nn.Module, loader: DataLoader[Any], spec: FinetuneSpec, device: torch.device
) -> float:
    """Fine-tune ``net`` in place (train mode, then back to eval); returns the mean loss."""
    opt, sched = make_optimizer(net.parameters(), spec, spec.steps(loader))
    net.train()
    losses: list[float] = []
    for _ in range(spec.epochs):
        for i, (x, y) in enumerate(loader):
            if spec.max_batches is not None and i >= spec.max_batches:
                break
            losses.append(training_step(net, x.to(device), y.to(device), opt))
            sched.step()
    net.eval()
    return sum(losses) / max(len(losses), 1)
