"""GeNAS ``wlm``: wide and flat minima, from the loss under growing weight perturbations."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch

from nasx.metric.base import Metric, MetricContext
from nasx.metric.bn import recalibrate_bn
from nasx.search_space.base import Architecture


def wlm_score(losses: Sequence[float], stds: Sequence[float]) -> float:
    """GeNAS ``tester_wlm.py``: ``1 / (poor_minima + 1e-5)``.

    ``poor_minima = |L_1/s_1| + sum_i |(L_{i+1} - L_i) / (s_{i+1} - s_i)|``; the unperturbed
    loss is taken as 0, as in the original.
    """
    poor = abs(losses[0] / stds[0])
    for i in range(len(stds) - 1):
        poor += abs((losses[i + 1] - losses[i]) / (stds[i + 1] - stds[i]))
    return 1.0 / (poor + 1e-5)


class FlatnessMetric(Metric):
    """The GeNAS flatness score ``wlm`` (higher = flatter minimum).

    BN is recalibrated once, then Gaussian noise is added in place to every parameter of the
    sub-network, level by level, and the valid loss is measured at each level.

    Args:
        stds: strictly increasing noise levels (GeNAS README: 0.001, 0.003, 0.006).
        recal_images: training images for BN recalibration (GeNAS: 850).
        val_images: valid images per level (GeNAS: 25000, the whole valid half).
        noise: ``cumulative`` adds noise of std ``s_i - s_{i-1}`` on top of the previous level
            (the original code; the effective std at level i is below ``s_i``); ``fresh``
            perturbs the unperturbed weights with std ``s_i`` (the paper's intent).
        bn_momentum: 0.1 is GeNAS's EMA recalibration; ``None`` an exact average.
    """

    name = "flatness"
    higher_is_better = True

    def __init__(
        self,
        stds: Sequence[float] = (0.001, 0.003, 0.006),
        recal_images: int = 850,
        val_images: int = 25000,
        noise: str = "cumulative",
        bn_momentum: float | None = 0.1,
    ) -> None:
        stds = [float(s) for s in stds]
        if not stds or stds[0] <= 0 or any(b <= a for a, b in pairwise(stds)):
            raise ValueError(f"metric.stds must be positive and strictly increasing, got {stds}")
        if noise not in ("cumulative", "fresh"):
            raise ValueError(f"metric.noise must be 'cumulative' or 'fresh', got {noise!r}")
        if recal_images < 1 or val_images < 1:
            raise ValueError("metric.recal_images and metric.val_images must be >= 1")
        self.stds, self.noise = stds, noise
        self.recal_images, self.val_images, self.bn_momentum = recal_images, val_images, bn_momentum

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        net = ctx.space.extract(ctx.supernet, arch)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        recalibrate_bn(
            net, ctx.data.train_loader(seed), self.recal_images, self.bn_momentum, ctx.device
        )
        loader = ctx.data.eval_loader("valid", self.val_images)
        params = [p for p in net.parameters()]
        base = [p.detach().clone() for p in params] if self.noise == "fresh" else []
        losses: list[float] = []
        prev = 0.0
        for s in self.stds:
            with torch.no_grad():
                for k, p in enumerate(params):
                    if self.noise == "fresh":
                        p.copy_(base[k])
                        std = s
                    else:
                        std = s - prev
                    # drawn on the CPU generator, as GeNAS does, then moved to the device
                    p.add_(torch.normal(0.0, std, p.shape, generator=generator).to(p.device))
            prev = s
            losses.append(ctx.runner.evaluate(net, loader).loss)
        out = {self.name: wlm_score(losses, self.stds)}
        out.update({f"loss_std{s:g}": v for s, v in zip(self.stds, losses, strict=True)})
        return out
