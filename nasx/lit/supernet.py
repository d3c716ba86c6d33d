"""Thin Lightning shell around supernet training (SPOS uniform single path per step)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import lightning as L
import torch
from torch import nn


class SupernetLitModule(L.LightningModule):
    """Trains a weight-sharing supernet on one sampled path per step.

    Args:
        net: the supernet; ``net(x, path)`` runs one path.
        path_sampler: maps the global step to the path of that step. The path depends only on
            the run seed and the step (never on a per-rank RNG), so every DDP rank and every
            resumed run draws the same sequence (GeNAS/RLNAS seed counter).
        lr: initial SGD learning rate.
        momentum: SGD momentum.
        weight_decay: L2 penalty on all parameters.
        nesterov: Nesterov momentum (RLNAS NB201 uses it).
        epochs: cosine schedule length.
        eta_min: final learning rate of the cosine schedule.
        lr_step_first: GeNAS/RLNAS DARTS call ``scheduler.step()`` at the start of every
            epoch, so epoch e trains at the cosine's value for e + 1 (and the first epoch
            never sees ``lr``); ``True`` reproduces that, ``False`` is the usual schedule.
    """

    def __init__(
        self,
        net: nn.Module,
        path_sampler: Callable[[int], Any],
        lr: float = 0.025,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        nesterov: bool = True,
        epochs: int = 250,
        eta_min: float = 0.001,
        lr_step_first: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "path_sampler"])
        self.net = net
        self.path_sampler = path_sampler

    def forward(self, x: torch.Tensor, path: Any) -> torch.Tensor:
        return self.net(x, path)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        logits = self.net(x, self.path_sampler(self.global_step))
        loss = nn.functional.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        self.log("supernet/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log("supernet/acc", acc, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self) -> Any:
        hp: Any = self.hparams
        opt = torch.optim.SGD(
            self.net.parameters(),
            lr=hp.lr,
            momentum=hp.momentum,
            weight_decay=hp.weight_decay,
            nesterov=hp.nesterov,
        )
        # per-epoch cosine: lr(e) = eta_min + (lr - eta_min)(1 + cos(pi e / E)) / 2 (RLNAS)
        sched: torch.optim.lr_scheduler.LRScheduler
        if hp.get("lr_step_first", False):
            sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(_shifted_cosine, hp=hp))
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=hp.epochs, eta_min=hp.eta_min
            )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def _shifted_cosine(epoch: int, hp: Any) -> float:
    """LR factor of epoch ``epoch`` when the scheduler steps first: the cosine at epoch + 1."""
    e = min(epoch + 1, hp.epochs)
    lr = hp.eta_min + (hp.lr - hp.eta_min) * (1 + math.cos(math.pi * e / hp.epochs)) / 2
    return float(lr / hp.lr)
