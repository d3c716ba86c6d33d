"""Thin Lightning shell around supernet training: the recipe says what one step does."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from nasx.supernet.base import Supernet
from nasx.supernet.recipe import TrainingRecipe


class SupernetLitModule(L.LightningModule):
    """Trains a weight-sharing supernet as its `TrainingRecipe` says.

    Args:
        net: the supernet.
        recipe: paths per step, loss, optimiser and scheduler.
        seed: the run seed; a step's paths depend only on it and the global step, so every
            DDP rank and every resumed run draws the same sequence (GeNAS/RLNAS seed counter).
    """

    def __init__(self, net: Supernet, recipe: TrainingRecipe, seed: int) -> None:
        super().__init__()
        self.net, self.recipe, self.seed = net, recipe, int(seed)

    def forward(self, x: torch.Tensor, path: Any) -> torch.Tensor:
        return self.net(x, path)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        paths = self.recipe.paths(self.net, self.seed, self.global_step)
        loss, logits = self.recipe.loss(self.net, x, y, paths)
        acc = (logits.argmax(1) == y).float().mean()
        self.log("supernet/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        self.log("supernet/acc", acc, prog_bar=True, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def configure_optimizers(self) -> Any:
        per_epoch = 1
        if self._trainer is not None:
            total = int(self.trainer.estimated_stepping_batches)
            per_epoch = max(1, total // max(1, int(self.trainer.max_epochs or 1)))
        return self.recipe.configure_optimizers(self.net.parameters(), per_epoch)
