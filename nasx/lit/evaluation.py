"""Evaluation through one reused Lightning ``Trainer`` (validation loop), and fine-tuning."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from nasx.metric.base import EvalResult
from nasx.optim.finetune import FinetuneSpec, make_optimizer, training_step


class _EvalModule(L.LightningModule):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.losses: list[float] = []
        self.correct = 0
        self.seen = 0

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.losses.append(float(nn.functional.cross_entropy(logits, y)))
        self.correct += int((logits.argmax(1) == y).sum())
        self.seen += len(y)


class LightningRunner:
    """`nasx.metric.EvalRunner` backed by ``Trainer.validate`` on a single device.

    The pipeline builds it from the ``trainer=`` preset, so its accelerator and precision
    (``trainer=gpu``: 16-bit mixed) apply to candidate evaluation and fine-tuning as they do
    to supernet training.

    Args:
        accelerator: Lightning accelerator (``cpu``, ``gpu``, ``auto``).
        precision: Lightning precision for evaluation and fine-tuning.
        devices: the one device to use, as Lightning takes it (``1``: the first; ``[k]``:
            device ``k``).
    """

    def __init__(
        self, accelerator: str = "cpu", precision: Any = "32-true", devices: Any = 1
    ) -> None:
        # the device banner was printed by the training Trainer already
        rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
        level = rank_zero.level
        rank_zero.setLevel(logging.WARNING)
        try:
            self.trainer = self._make_trainer(accelerator, precision, devices)
        finally:
            rank_zero.setLevel(level)

    @staticmethod
    def _make_trainer(accelerator: str, precision: Any, devices: Any) -> L.Trainer:
        return L.Trainer(
            accelerator=accelerator,
            devices=devices,
            precision=precision,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )

    @property
    def device(self) -> torch.device:
        """Where evaluated networks run."""
        return self.trainer.strategy.root_device

    def evaluate(self, net: nn.Module, loader: DataLoader) -> EvalResult:
        module = _EvalModule(net)
        self.trainer.validate(module, dataloaders=loader, verbose=False)
        n = max(len(module.losses), 1)
        return EvalResult(sum(module.losses) / n, module.correct / max(module.seen, 1), module.seen)

    def train_early_exit(
        self,
        net: nn.Module,
        recipe: Any,
        train_loader: Any,
        valid_loader: DataLoader,
        seed: int,
        max_batches: int | None = None,
    ) -> Any:
        """`nasx.lit.early_exit.train_early_exit` on this runner's device and precision."""
        from functools import partial

        from nasx.lit.early_exit import train_early_exit, trainer_factory_like

        factory = partial(trainer_factory_like(self.trainer), limit_train_batches=max_batches)
        return train_early_exit(
            net, recipe, train_loader, valid_loader, seed=seed, trainer_factory=factory
        )

    def finetune(self, net: nn.Module, loader: DataLoader, spec: FinetuneSpec) -> float:
        """Fine-tune through ``Trainer.fit`` (a fresh Trainer: max_epochs differs per spec)."""
        module = _FinetuneModule(net, spec, spec.steps(loader))
        trainer = L.Trainer(
            accelerator=self.trainer.accelerator,
            devices=[self.device.index] if self.device.index is not None else 1,
            precision=self.trainer.precision_plugin.precision,
            max_epochs=spec.epochs,
            limit_train_batches=spec.max_batches if spec.max_batches is not None else 1.0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(module, train_dataloaders=loader)
        net.eval()
        return sum(module.losses) / max(len(module.losses), 1)


class _FinetuneModule(L.LightningModule):
    """Manual optimisation: SAM/ASAM need two backward passes per step."""

    def __init__(self, net: nn.Module, spec: FinetuneSpec, total_steps: int) -> None:
        super().__init__()
        self.net, self.spec, self.total_steps = net, spec, total_steps
        self.automatic_optimization = False
        self.losses: list[float] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        # the optimiser is stepped directly: SAM's two passes do not fit Lightning's
        # closure-based optimizer.step
        x, y = batch
        self.losses.append(training_step(self.net, x, y, self.opt, self.manual_backward))
        self.sched.step()

    def configure_optimizers(self) -> Any:
        # the schedule is stepped by hand above (it sits on SAM's base optimiser)
        self.opt, self.sched = make_optimizer(self.net.parameters(), self.spec, self.total_steps)
        return self.opt
