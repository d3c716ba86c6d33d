"""Top-1 validation accuracy of the inherited weights: GeNAS ``acc`` and NSGANetV2's evaluator."""

from __future__ import annotations

import torch
from torch import nn

from nasx.metric.base import Metric, MetricContext
from nasx.optim.finetune import FinetuneSpec
from nasx.search_space.base import Architecture


def reset_classifier(net: nn.Module, dropout: float, seed: int) -> None:
    """Re-initialise the network's last ``nn.Linear`` and put dropout ``p`` before it.

    NSGANetV2 (§3) replaces the classifier with a fresh ``Linear`` behind dropout 0.2 before
    fine-tuning a candidate; the dropout is a forward pre-hook, so the weights' names stay.
    """
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("reset_classifier: the network has no nn.Linear classifier")
    head = linears[-1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head.reset_parameters()
    if dropout > 0:

        def drop(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            return (nn.functional.dropout(args[0], dropout, module.training), *args[1:])

        head.register_forward_pre_hook(drop)


class AccuracyMetric(Metric):
    """Valid top-1 (a fraction) of the sub-network with inherited weights.

    GeNAS (the defaults): BN recalibrated on ``recal_images`` training images, then scored on
    ``val_images`` valid images. NSGANetV2's evaluator (§3, ``metric=nsganetv2_accuracy``):
    the same BN subset for every candidate (``recal_seed``), an exact average
    (``bn_momentum=None``), and with ``finetune_epochs`` > 0 the classifier reset behind
    dropout 0.2 and the candidate fine-tuned (SGD Nesterov, momentum 0.9, weight decay 4e-5,
    per-iteration cosine from ``finetune_lr`` to 0) after the recalibration. Candidates are
    served at their own input resolution (`MetricContext.train_loader`).

    Args:
        recal_images: training images used for BN recalibration (GeNAS 5000, NSGANetV2 2000).
        val_images: valid images scored (GeNAS 10000, NSGANetV2 ``vld_size`` 5000; capped at
            the split size).
        bn_momentum: 0.1 reproduces GeNAS's EMA recalibration; ``None`` is an exact average.
        recal_seed: seed of the recalibration (and fine-tuning) loader; ``None`` draws one per
            architecture (GeNAS), a number fixes it for all (NSGANetV2: 937162211).
        finetune_epochs: NSGANetV2 ``n_epochs`` (0: no fine-tuning).
        finetune_lr: the dataset's ``init_lr`` (CIFAR/CINIC/STL-10 0.01, ImageNet 1e-4).
        finetune_batches: limit each fine-tuning epoch to this many batches (``None``: all).
        reset_classifier: reset the classifier before fine-tuning (NSGANetV2: yes).
        classifier_dropout: dropout in front of the reset classifier (NSGANetV2 0.2).
        finetune_momentum, finetune_weight_decay, finetune_nesterov: the fine-tuning SGD
            (NSGANetV2: 0.9, 4e-5, Nesterov; CNAS §6.8: 0.9, 5e-5, plain).
        finetune_schedule: ``cosine`` (per-iteration cosine to 0, NSGANetV2) or
            ``cnas_per_batch`` (CNAS's ``CosineAnnealingLR(T_max=epochs)`` stepped per batch).
        recalibrate_before_finetune: recalibrate BN before fine-tuning (NSGANetV2); CNAS
            fine-tunes the inherited statistics as they are (``False``).
    """

    name = "accuracy"
    higher_is_better = True
    ideal = 1.0
    error_scale = 100.0  # top-1 error in %

    def __init__(
        self,
        recal_images: int = 5000,
        val_images: int = 10000,
        bn_momentum: float | None = 0.1,
        recal_seed: int | None = None,
        finetune_epochs: int = 0,
        finetune_lr: float = 0.01,
        finetune_batches: int | None = None,
        reset_classifier: bool = True,
        classifier_dropout: float = 0.2,
        finetune_momentum: float = 0.9,
        finetune_weight_decay: float = 4e-5,
        finetune_nesterov: bool = True,
        finetune_schedule: str = "cosine",
        recalibrate_before_finetune: bool = True,
    ) -> None:
        if recal_images < 1 or val_images < 1:
            raise ValueError("metric.recal_images and metric.val_images must be >= 1")
        if not 0.0 <= classifier_dropout < 1.0:
            raise ValueError(
                f"metric.classifier_dropout must be in [0, 1), got {classifier_dropout}"
            )
        self.recal_images, self.val_images, self.bn_momentum = recal_images, val_images, bn_momentum
        self.recal_seed = recal_seed
        self.finetune = FinetuneSpec(
            epochs=finetune_epochs,
            optimizer="sgd",
            lr=finetune_lr,
            momentum=finetune_momentum,
            weight_decay=finetune_weight_decay,
            nesterov=finetune_nesterov,
            max_batches=finetune_batches,
            schedule=finetune_schedule,
        )
        self.recalibrate_before_finetune = recalibrate_before_finetune
        self.reset_classifier, self.classifier_dropout = reset_classifier, classifier_dropout

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        if self.finetune.epochs == 0:
            net = ctx.calibrated(
                arch, generator, self.recal_images, self.bn_momentum, data_seed=self.recal_seed
            )
        else:
            head_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
            dropout_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))

            def prepare(net: nn.Module) -> None:
                if self.reset_classifier:
                    reset_classifier(net, self.classifier_dropout, head_seed)

            # fine-tuning draws dropout masks from the global generator: fixed per architecture
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(dropout_seed)
                net = ctx.calibrated(
                    arch,
                    generator,
                    self.recal_images,
                    self.bn_momentum,
                    finetune=self.finetune,
                    data_seed=self.recal_seed,
                    recalibrate_first=self.recalibrate_before_finetune,
                    prepare=prepare,
                )
        res = ctx.runner.evaluate(net, ctx.valid_loader(self.val_images, arch))
        return {self.name: res.accuracy, "valid_loss": res.loss}
