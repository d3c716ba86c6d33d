"""Plain-PyTorch evaluation and fine-tuning (the pipeline uses the Lightning ones in `nasx.lit`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from nasx.metric.base import EvalResult
from nasx.optim.finetune import FinetuneSpec, finetune


class TorchRunner:
    """`nasx.metric.EvalRunner` as a bare loop; for library use without a Trainer."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    @torch.no_grad()
    def evaluate(self, net: nn.Module, loader: DataLoader) -> EvalResult:
        losses, correct, seen = [], 0, 0
        for x, y in loader:
            x, y = x.to(self.device), y.to(self.device)
            logits = net(x)
            losses.append(float(nn.functional.cross_entropy(logits, y)))
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        return EvalResult(sum(losses) / max(len(losses), 1), correct / max(seen, 1), seen)

    def finetune(self, net: nn.Module, loader: DataLoader, spec: FinetuneSpec) -> float:
        return finetune(net, loader, spec, self.device)

    def train_early_exit(
        self,
        net: nn.Module,
        recipe: Any,
        train_loader: Any,
        valid_loader: DataLoader,
        seed: int,
        max_batches: int | None = None,
    ) -> Any:
        """Lightning's early-exit training on this runner's device.

        The phases, the kept epochs and the threshold tuning are too much to repeat as a
        second bare loop, so this runner, too, trains through `nasx.lit.early_exit`.
        """
        from nasx.lit.early_exit import quiet_trainer, train_early_exit

        on_gpu = self.device.type == "cuda"

        def factory(**kwargs: Any) -> Any:
            return quiet_trainer(
                accelerator="gpu" if on_gpu else "cpu",
                devices=[self.device.index or 0] if on_gpu else 1,
                limit_train_batches=max_batches,
                **kwargs,
            )

        return train_early_exit(
            net, recipe, train_loader, valid_loader, seed=seed, trainer_factory=factory
        )
