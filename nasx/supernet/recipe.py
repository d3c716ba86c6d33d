"""Supernet training recipes (config group ``supernet``): paths per step, loss, optimiser.

A recipe is the plain-PyTorch description of one training step; `nasx.lit.supernet` is the
thin Lightning shell that calls it. The optimiser and the scheduler are ``_partial_`` config
nodes (``supernet.optimizer.lr=0.1``; another optimiser is a YAML change). Which paths a step
trains (`paths`) and how their losses combine (`loss`) are the hooks that sandwich sampling
and in-place distillation override.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from nasx.data.resolution import resize_batch
from nasx.supernet.base import Supernet

#: ``optimizer(params) -> torch.optim.Optimizer`` (a ``_partial_`` node)
OptimizerFactory = Callable[..., torch.optim.Optimizer]
#: ``scheduler(optimizer) -> LRScheduler``; a step-interval one also gets ``steps_per_epoch=``
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]

INTERVALS = ("epoch", "step")


class TrainingRecipe:
    """Base class of every ``supernet=`` option: SPOS uniform single-path training.

    Each step trains the paths `paths` returns (one uniformly sampled path here) on
    cross-entropy with optional label smoothing. The path depends only on the run seed and
    the step (GeNAS/RLNAS reseed from a step counter so that every DDP rank draws the same
    path); that also makes a resumed run draw the same sequence.

    Args:
        epochs: training epochs.
        optimizer: ``optimizer(params)`` (a ``_partial_`` node, e.g. ``torch.optim.SGD``).
        scheduler: ``scheduler(optimizer)`` (a ``_partial_`` node) or ``None`` (constant).
        scheduler_interval: ``epoch`` or ``step``; a ``step`` scheduler is built with
            ``steps_per_epoch=`` the optimiser steps of one epoch.
        grad_clip: gradient clip value (``None``: none).
        grad_clip_algorithm: ``norm`` (GeNAS/RLNAS DARTS: clip the gradient norm) or
            ``value`` (RLNAS MobileNet: clip each gradient element).
        random_labels: train on one fixed random label per image drawn from the seed (RLNAS).
        label_smoothing: cross-entropy label smoothing (RLNAS MobileNet: 0.1).
    """

    def __init__(
        self,
        epochs: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        grad_clip: float | None = None,
        grad_clip_algorithm: str = "norm",
        random_labels: bool = False,
        label_smoothing: float = 0.0,
    ) -> None:
        if epochs < 1:
            raise ValueError(f"supernet.epochs={epochs}: train at least one epoch (set it >= 1)")
        if scheduler_interval not in INTERVALS:
            raise ValueError(
                f"supernet.scheduler_interval={scheduler_interval!r}: use epoch or step"
            )
        if grad_clip is not None and grad_clip <= 0:
            raise ValueError(f"supernet.grad_clip={grad_clip}: use a value > 0 or null")
        if grad_clip_algorithm not in ("norm", "value"):
            raise ValueError(
                f"supernet.grad_clip_algorithm={grad_clip_algorithm!r}: use norm or value"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"supernet.label_smoothing={label_smoothing}: use [0, 1)")
        self.epochs, self.grad_clip = epochs, grad_clip
        self.grad_clip_algorithm = grad_clip_algorithm
        self.optimizer, self.scheduler = optimizer, scheduler
        self.scheduler_interval = scheduler_interval
        self.random_labels, self.label_smoothing = random_labels, label_smoothing

    def paths(self, supernet: Supernet, seed: int, step: int) -> list[Any]:
        """The paths trained at ``step``: one uniform path (SPOS), a pure function of both."""
        return [supernet.sample_path(np.random.default_rng([seed, step]))]

    def loss(
        self, supernet: Supernet, x: torch.Tensor, y: torch.Tensor, paths: list[Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's loss and the logits of the first path (for the logged accuracy).

        The default sums the cross-entropy of every path (one for SPOS).
        """
        total: torch.Tensor | None = None
        first: torch.Tensor | None = None
        for path in paths:
            logits = supernet(self.inputs_for(x, path), path)
            term = nn.functional.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
            total = term if total is None else total + term
            first = logits if first is None else first
        assert total is not None and first is not None, "paths() returned no path"
        return total, first

    @staticmethod
    def inputs_for(x: torch.Tensor, path: Any) -> torch.Tensor:
        """``x`` at the path's input resolution.

        A path with an ``"r"`` (OFA MobileNetV3's resolution gene) gets its batch resized to
        r, as OFA trains at a sampled resolution; other paths get ``x`` unchanged.
        """
        r = path.get("r") if isinstance(path, Mapping) else None
        return x if r is None else resize_batch(x, int(r), train=True)

    def configure_optimizers(
        self, params: Iterable[nn.Parameter], steps_per_epoch: int
    ) -> dict[str, Any]:
        """Lightning's ``configure_optimizers`` dict for these parameters."""
        return lightning_optimizers(
            self.optimizer, self.scheduler, self.scheduler_interval, params, steps_per_epoch
        )


def lightning_optimizers(
    optimizer: OptimizerFactory,
    scheduler: SchedulerFactory | None,
    interval: str,
    params: Any,
    steps_per_epoch: int,
) -> dict[str, Any]:
    """Lightning's ``configure_optimizers`` dict from a recipe's partial nodes.

    A per-step scheduler (``interval="step"``) is built with ``steps_per_epoch``; the
    supernet and the retrain recipes both configure through here.
    """
    opt = optimizer(params)
    if scheduler is None:
        return {"optimizer": opt}
    step = interval == "step"
    sched = scheduler(opt, steps_per_epoch=steps_per_epoch) if step else scheduler(opt)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}
