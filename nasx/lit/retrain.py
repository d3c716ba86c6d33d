"""Thin Lightning shell around retraining: the `RetrainRecipe` says what one step does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from nasx.retrain.augment import to_resolution
from nasx.retrain.recipe import RetrainRecipe, split_output, supports_drop_path


class RetrainLitModule(L.LightningModule):
    """Trains one stand-alone network as its `RetrainRecipe` says; validates every epoch.

    Every step reseeds the global torch generator from ``(seed, global step, rank)``
    (`RetrainRecipe.step_seed`), so dropout, drop path and augmentation of a run resumed from
    a checkpoint repeat the uninterrupted run's. With ``recipe.ema_decay`` an exponential
    moving average of the weights (``AveragedModel``, buffers included) is updated after
    every optimiser step, kept in the checkpoint, and validated instead of the raw weights.

    Args:
        net: the network (its forward gives logits, or ``(logits, aux_logits)`` in training).
        recipe: loss, optimiser, schedule and regularisation.
        seed: the architecture's seed.
        name: the architecture's folder name; metrics are logged as ``retrain/<name>/...``.
        augment: batch augmentation applied to training batches (normalised images in/out).
        input_size: the network's input resolution; batches of another size are resized.
        bicubic: resize with bicubic interpolation (NSGANetV2's upsampling of CIFAR).
    """

    def __init__(
        self,
        net: nn.Module,
        recipe: RetrainRecipe,
        seed: int,
        name: str,
        augment: Callable[[torch.Tensor], torch.Tensor],
        input_size: int,
        bicubic: bool = False,
    ) -> None:
        super().__init__()
        self.net, self.recipe, self.seed, self.tag = net, recipe, int(seed), name
        self.augment, self.input_size, self.bicubic = augment, int(input_size), bicubic
        self.ema: AveragedModel | None = None
        if recipe.ema_decay is not None:
            self.ema = AveragedModel(
                net, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True
            )
            self.ema.requires_grad_(False)  # not trained: DDP must not wait for its gradients
        self.drop_path = supports_drop_path(net) and recipe.drop_path > 0
        self.steps_per_epoch = 1

    @property
    def eval_net(self) -> nn.Module:
        """The weights that are validated, tested and saved (the EMA ones when enabled)."""
        return self.ema.module if self.ema is not None else self.net

    def forward(self, x: torch.Tensor) -> Any:
        return self.eval_net(x)

    def prepare(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """A batch at the network's input resolution."""
        return to_resolution(x, self.input_size, self.bicubic, train)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        torch.manual_seed(self.recipe.step_seed(self.seed, self.global_step, self.global_rank))
        if self.drop_path:
            prob = self.recipe.drop_path_at(
                self.current_epoch, self.global_step, self.steps_per_epoch
            )
            # a plain float attribute of the network (DARTS's model.drop_path_prob)
            setattr(self.net, "drop_path_prob", prob)  # noqa: B010

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        x = self.prepare(self.augment(x), train=True)
        loss, logits = self.recipe.loss(self.net, x, y)
        acc = (logits.argmax(1) == y).float().mean()
        prefix = f"retrain/{self.tag}"
        self.log(f"{prefix}/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        self.log(f"{prefix}/acc", acc, prog_bar=True, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.net)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits, _ = split_output(self.eval_net(self.prepare(x, train=False)))
        hits = logits.topk(min(5, logits.shape[1]), dim=1).indices == y.view(-1, 1)
        prefix, n = f"retrain/{self.tag}", len(y)
        top1 = 100.0 * hits[:, 0].float().mean()
        top5 = 100.0 * hits.any(dim=1).float().mean()
        self.log(f"{prefix}/val_top1", top1, prog_bar=True, sync_dist=True, batch_size=n)
        self.log(f"{prefix}/val_top5", top5, sync_dist=True, batch_size=n)

    def configure_optimizers(self) -> Any:
        if self._trainer is not None:
            total = int(self.trainer.estimated_stepping_batches)
            self.steps_per_epoch = max(1, total // max(1, int(self.trainer.max_epochs or 1)))
        return self.recipe.configure_optimizers(self.net, self.steps_per_epoch)
