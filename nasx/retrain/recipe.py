"""The retraining recipe (config group ``retrain``): train one stand-alone network from start.

`RetrainRecipe` is the plain-PyTorch description of the training (loss, optimiser, schedule,
regularisation, data handling); `nasx.lit.retrain` is the thin Lightning shell that runs it
and `nasx.stages.retrain` the stage that applies it to every selected architecture.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from nasx.retrain.augment import AUGMENTS, BatchAugment
from nasx.supernet.recipe import (
    INTERVALS,
    OptimizerFactory,
    SchedulerFactory,
    lightning_optimizers,
)

log = logging.getLogger(__name__)

#: where the weights start: a fresh network or the supernet's weights kept by ``select``
INITS = ("scratch", "inherited")
#: how the drop-path probability evolves (DARTS: linear per epoch; NAG/NAO: linear per step)
DROP_PATH_SCHEDULES = ("constant", "linear_epoch", "linear_step")
#: which parameters get the optimiser's weight decay (RLNAS MobileNet: conv kernels only)
WEIGHT_DECAY_ON = ("all", "conv")
#: the split validated after every epoch (``None``: no validation)
VAL_SPLITS = ("valid", "test")


class RetrainRecipe:
    """Base class of every ``retrain=`` option: supervised training of one network.

    The loss is cross-entropy with label smoothing; a network whose forward returns
    ``(logits, aux_logits)`` in training mode (DARTS's auxiliary head) adds ``aux_weight``
    times the same loss of the auxiliary logits. A network supports drop path when it has a
    float attribute ``drop_path_prob``, which the shell sets before every step (DARTS's
    ``model.drop_path_prob``); other networks ignore ``drop_path`` with a warning.

    Args:
        epochs: training epochs.
        optimizer: ``optimizer(params)`` (a ``_partial_`` node, e.g. ``torch.optim.SGD``);
            it receives two parameter groups when ``weight_decay_on=conv``.
        scheduler: ``scheduler(optimizer)`` (a ``_partial_`` node) or ``None`` (constant).
        scheduler_interval: ``epoch`` or ``step``; a ``step`` scheduler is built with
            ``steps_per_epoch=`` the optimiser steps of one epoch.
        grad_clip: gradient clip value (``None``: none), applied by the Lightning Trainer.
        grad_clip_algorithm: ``norm`` (clip the gradient norm) or ``value``.
        label_smoothing: cross-entropy label smoothing.
        aux_weight: weight of the auxiliary head's loss (0: ignore an auxiliary output).
        ema_decay: decay of an exponential moving average of the weights, which is then
            validated, tested and saved instead of the raw weights (``None``: no EMA).
        dropout: dropout before the classifier; the space is built with it when its
            constructor takes ``dropout`` (``None``: the space's own setting).
        drop_path: drop-path probability (0: off).
        drop_path_schedule: ``constant``, ``linear_epoch`` (DARTS: ``drop_path * epoch /
            epochs``) or ``linear_step`` (NAG/NAO: ``drop_path * step / total steps``).
        init: ``scratch`` or ``inherited`` (the ``weights.pt`` the select stage wrote).
        batch_size: training batch size (``None``: ``dataset.batch_size``).
        augment: batch augmentation, one of ``none``, ``standard``, ``cutout``,
            ``autoaugment_cutout`` (see `nasx.retrain.augment.BatchAugment`).
        cutout_size: side of the cutout square in pixels.
        upsample_to_resolution: upsample batches bicubically to the network's input size
            (`SearchSpace.input_shape_of`; NSGANetV2's 32-px CIFAR images).
        data_resolution: image size the dataset is prepared at for retraining (NSGANetV2:
            32, the native CIFAR size; ``None``: the space's input size).
        weight_decay_on: ``all`` parameters, or only ``conv`` kernels (4-d weights).
        val_split: ``valid``, ``test`` or ``None``; an empty valid split falls back to test.
        limit_batches: train and validate on at most this many batches per epoch (smoke runs).
        corruptions: corruption names for the OOD test (``nasx.ood``; ``None``: none).
        severities: the corruption severities tested (FlatNAS: 1-5).
    """

    def __init__(
        self,
        epochs: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        grad_clip: float | None = None,
        grad_clip_algorithm: str = "norm",
        label_smoothing: float = 0.0,
        aux_weight: float = 0.0,
        ema_decay: float | None = None,
        dropout: float | None = None,
        drop_path: float = 0.0,
        drop_path_schedule: str = "constant",
        init: str = "scratch",
        batch_size: int | None = None,
        augment: str = "none",
        cutout_size: int = 16,
        upsample_to_resolution: bool = False,
        data_resolution: int | None = None,
        weight_decay_on: str = "all",
        val_split: str | None = "valid",
        limit_batches: int | None = None,
        corruptions: list[str] | None = None,
        severities: list[int] | tuple[int, ...] = (1, 2, 3, 4, 5),
    ) -> None:
        checks: list[tuple[bool, str]] = [
            (epochs >= 1, f"retrain.epochs={epochs}: train at least one epoch"),
            (scheduler_interval in INTERVALS, "retrain.scheduler_interval: use epoch or step"),
            (grad_clip is None or grad_clip > 0, "retrain.grad_clip: use a value > 0 or null"),
            (grad_clip_algorithm in ("norm", "value"), "retrain.grad_clip_algorithm: norm|value"),
            (0.0 <= label_smoothing < 1.0, "retrain.label_smoothing: use a value in [0, 1)"),
            (aux_weight >= 0, "retrain.aux_weight: use a value >= 0"),
            (ema_decay is None or 0 < ema_decay < 1, "retrain.ema_decay: use (0, 1) or null"),
            (dropout is None or 0 <= dropout < 1, "retrain.dropout: use [0, 1) or null"),
            (0 <= drop_path < 1, "retrain.drop_path: use a value in [0, 1)"),
            (
                drop_path_schedule in DROP_PATH_SCHEDULES,
                "retrain.drop_path_schedule: use " + " | ".join(DROP_PATH_SCHEDULES),
            ),
            (init in INITS, f"retrain.init={init!r}: use scratch or inherited"),
            (batch_size is None or batch_size >= 1, "retrain.batch_size: use >= 1 or null"),
            (augment in AUGMENTS, f"retrain.augment={augment!r}: use " + " | ".join(AUGMENTS)),
            (cutout_size >= 1, "retrain.cutout_size: use >= 1"),
            (data_resolution is None or data_resolution >= 1, "retrain.data_resolution: >= 1"),
            (weight_decay_on in WEIGHT_DECAY_ON, "retrain.weight_decay_on: use all or conv"),
            (val_split is None or val_split in VAL_SPLITS, "retrain.val_split: valid|test|null"),
            (limit_batches is None or limit_batches >= 1, "retrain.limit_batches: >= 1 or null"),
            (
                len(severities) > 0 and all(int(v) in (1, 2, 3, 4, 5) for v in severities),
                f"retrain.severities={list(severities)}: use some of 1-5",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        if corruptions is not None:
            _check_corruptions([str(c) for c in corruptions])
        self.epochs, self.optimizer, self.scheduler = epochs, optimizer, scheduler
        self.scheduler_interval = scheduler_interval
        self.grad_clip, self.grad_clip_algorithm = grad_clip, grad_clip_algorithm
        self.label_smoothing, self.aux_weight, self.ema_decay = (
            label_smoothing,
            aux_weight,
            ema_decay,
        )
        self.dropout, self.drop_path, self.drop_path_schedule = (
            dropout,
            drop_path,
            drop_path_schedule,
        )
        self.init, self.batch_size = init, batch_size
        self.augment, self.cutout_size = augment, cutout_size
        self.upsample_to_resolution, self.data_resolution = upsample_to_resolution, data_resolution
        self.weight_decay_on, self.val_split = weight_decay_on, val_split
        self.limit_batches = limit_batches
        self.corruptions = None if corruptions is None else [str(c) for c in corruptions]
        self.severities = [int(v) for v in severities]
        self._check_schedule()
        self._warned_aux = False

    # --- one step --------------------------------------------------------------------------
    def loss(
        self, net: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's loss and the main logits (for the logged accuracy)."""
        out = net(x)
        logits, aux = split_output(out)
        loss = nn.functional.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        if self.aux_weight > 0:
            if aux is None:
                if not self._warned_aux:
                    log.warning(
                        "retrain.aux_weight=%s but %s has no auxiliary head (its forward "
                        "returns no (logits, aux_logits) pair): training without it",
                        self.aux_weight,
                        type(net).__name__,
                    )
                    self._warned_aux = True
            else:
                aux_loss = nn.functional.cross_entropy(aux, y, label_smoothing=self.label_smoothing)
                loss = loss + self.aux_weight * aux_loss
        return loss, logits

    def drop_path_at(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """The drop-path probability of a step (epoch and step counted from 0)."""
        if self.drop_path_schedule == "linear_epoch":
            return self.drop_path * epoch / self.epochs
        if self.drop_path_schedule == "linear_step":
            return self.drop_path * step / max(1, self.epochs * steps_per_epoch)
        return self.drop_path

    @staticmethod
    def step_seed(seed: int, step: int, rank: int) -> int:
        """The torch seed of one step: dropout, drop path and augmentation depend on it only."""
        return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])

    def batch_augment(self, mean: Any, std: Any) -> BatchAugment:
        """The `BatchAugment` of ``augment`` for a dataset's normalisation."""
        return BatchAugment(self.augment, mean, std, self.cutout_size)

    # --- optimisation ----------------------------------------------------------------------
    def param_groups(self, net: nn.Module) -> list[dict[str, Any]]:
        """The optimiser's groups: every parameter, or decayed conv kernels and the rest."""
        params = [p for p in net.parameters() if p.requires_grad]
        if self.weight_decay_on == "all":
            return [{"params": params}]
        decay = [p for p in params if p.ndim == 4]
        rest = [p for p in params if p.ndim != 4]
        return [{"params": decay}, {"params": rest, "weight_decay": 0.0}]

    def _check_schedule(self) -> None:
        """Build the optimiser and scheduler once on a dummy parameter.

        Settings they refuse (a warm-up longer than ``retrain.epochs``) then fail at the
        config, before any data is read.
        """
        try:
            self.configure_optimizers(nn.Linear(1, 1), steps_per_epoch=1)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"retrain.optimizer / retrain.scheduler: {exc}: fix these settings "
                "(e.g. retrain.epochs, retrain.scheduler.warmup)"
            ) from exc

    def configure_optimizers(self, net: nn.Module, steps_per_epoch: int) -> dict[str, Any]:
        """Lightning's ``configure_optimizers`` dict for ``net``'s parameters."""
        return lightning_optimizers(
            self.optimizer,
            self.scheduler,
            self.scheduler_interval,
            self.param_groups(net),
            steps_per_epoch,
        )


def _check_corruptions(names: list[str]) -> None:
    """``retrain.corruptions`` needs `nasx.ood` and names it knows."""
    if importlib.util.find_spec("nasx.ood") is None:
        raise ValueError(
            "retrain.corruptions needs the nasx.ood package, which this installation lacks: "
            "set retrain.corruptions=null"
        )
    from nasx.ood import CORRUPTIONS

    unknown = sorted(set(names) - set(CORRUPTIONS))
    if unknown or not names:
        raise ValueError(
            f"retrain.corruptions: unknown or no corruptions {unknown}: use some of "
            f"{', '.join(CORRUPTIONS)}, or null"
        )


def split_output(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(logits, aux_logits or None)`` of a forward that returns logits or a pair."""
    if isinstance(out, tuple | list):
        return out[0], (out[1] if len(out) > 1 else None)
    return out, None


def supports_drop_path(net: nn.Module) -> bool:
    """Whether ``net`` reads a drop-path probability (a float ``drop_path_prob`` attribute)."""
    return isinstance(getattr(net, "drop_path_prob", None), float | int)


@torch.no_grad()
def evaluate_topk(
    net: nn.Module,
    loader: DataLoader[Any],
    device: torch.device,
    prepare: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[float, float]:
    """Top-1 and top-5 accuracy in percent (top-k capped at the number of classes).

    ``prepare`` brings a batch to the network's input (resolution); ``net`` is left in eval
    mode.
    """
    net.eval()
    right1 = right5 = total = 0
    for x, y in loader:
        x, y = prepare(x.to(device)), y.to(device)
        logits, _ = split_output(net(x))
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = top == y.view(-1, 1)
        right1 += int(hits[:, 0].sum())
        right5 += int(hits.any(dim=1).sum())
        total += len(y)
    if total == 0:
        return float("nan"), float("nan")
    return 100.0 * right1 / total, 100.0 * right5 / total


def load_inherited(net: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load inherited weights into ``net``; returns the keys left at their fresh values.

    Tensors whose shape differs from ``net``'s (a classifier of another class count, which
    NSGANetV2 resets before retraining) are skipped; any other mismatch is a ``ValueError``.
    """
    own = net.state_dict()
    reset = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    kept = {k: v for k, v in state.items() if k not in reset}
    # nn.Module's own loader: OFA's networks override load_state_dict and ignore ``strict``
    result = nn.Module.load_state_dict(net, kept, strict=False)
    missing = sorted(set(result.missing_keys) - set(reset))
    if missing or result.unexpected_keys:
        raise ValueError(
            f"the inherited weights do not fit the network: missing {missing[:5]}, "
            f"unexpected {list(result.unexpected_keys)[:5]}"
        )
    return reset
