"""GeNAS ``wlm``: wide and flat minima, from the loss under growing weight perturbations."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch

from nasx.metric.base import Metric, MetricContext
from nasx.search_space.base import Architecture


def noise_generator(
    generator: torch.Generator, device: torch.device, on_device: bool
) -> torch.Generator:
    """The generator that perturbations draw from.

    On the CPU, or with ``on_device=False``, the given CPU generator itself (GeNAS draws on
    the CPU and moves the noise). Otherwise a generator on ``device`` seeded from one draw of
    the CPU generator, so the noise never crosses the bus and stays a function of the seed.
    """
    if device.type == "cpu" or not on_device:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


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
        device_noise: on an accelerator, draw the noise there from a device generator seeded
            by the CPU generator (fast); ``False`` draws on the CPU and copies, as GeNAS. On the
            CPU both are the same.

    Speed: the valid images are cut into batches on ``ctx.device`` once and reused for every
    level and candidate (`DeviceBatchCache`); BN is recalibrated once per candidate; the noise
    is added in place to the extracted sub-network (no model copies). The values equal those
    of the plain procedure (``benchmarks/flatness_cost.py`` checks this).
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
        device_noise: bool = True,
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
        self.device_noise = device_noise

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        net = ctx.calibrated(arch, generator, self.recal_images, self.bn_momentum)
        loader = ctx.valid_loader(self.val_images, arch)
        params = [p for p in net.parameters()]
        base = [p.detach().clone() for p in params] if self.noise == "fresh" else []
        device = params[0].device if params else ctx.device
        gen = noise_generator(generator, device, self.device_noise)
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
                    # CPU generator: drawn on the CPU, as GeNAS does, then moved to the device
                    noise = torch.normal(0.0, std, p.shape, generator=gen, device=gen.device)
                    p.add_(noise.to(p.device))
            prev = s
            losses.append(ctx.runner.evaluate(net, loader).loss)
        out = {self.name: wlm_score(losses, self.stds)}
        out.update({f"loss_std{s:g}": v for s, v in zip(self.stds, losses, strict=True)})
        return out
