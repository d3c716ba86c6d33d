"""Top-1 validation accuracy of the inherited weights after BN recalibration (GeNAS ``acc``)."""

from __future__ import annotations

import torch

from nasx.metric.base import Metric, MetricContext
from nasx.search_space.base import Architecture


class AccuracyMetric(Metric):
    """Valid top-1 (a fraction) of the sub-network with recalibrated BN.

    Args:
        recal_images: training images used for BN recalibration (GeNAS default 5000).
        val_images: valid images scored (GeNAS default 10000; capped at the split size).
        bn_momentum: 0.1 reproduces GeNAS's EMA recalibration; ``None`` is an exact average.
    """

    name = "accuracy"
    higher_is_better = True
    ideal = 1.0
    error_scale = 100.0  # top-1 error in %

    def __init__(
        self, recal_images: int = 5000, val_images: int = 10000, bn_momentum: float | None = 0.1
    ) -> None:
        if recal_images < 1 or val_images < 1:
            raise ValueError("metric.recal_images and metric.val_images must be >= 1")
        self.recal_images, self.val_images, self.bn_momentum = recal_images, val_images, bn_momentum

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        net = ctx.calibrated(arch, generator, self.recal_images, self.bn_momentum)
        res = ctx.runner.evaluate(net, ctx.valid_loader(self.val_images))
        return {self.name: res.accuracy, "valid_loss": res.loss}
