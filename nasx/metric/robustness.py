"""FlatNAS robustness: accuracy change under multiplicative weight noise (``perturb.py``).

Also the ``top1_robust`` objective's two formulas (`top1_robust`, `alpha_norm`); the objective
itself needs a search-loop hook that rescores the archive (see `alpha_norm`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nasx.metric.base import Metric, MetricContext
from nasx.metric.bn import recalibrate_bn
from nasx.metric.flatness import DeviceBatchCache, noise_generator
from nasx.search_space.base import Architecture


class RobustnessMetric(Metric):
    """Mean ``|acc0 - acc_perturbed|`` in percent over ``draws`` noise draws (lower is better).

    FlatNAS (``utility/perturb.py``): each draw perturbs **every** parameter tensor (BN affine
    weights included, BN running statistics not) as ``w <- w + sigma * (w * r)``,
    ``r ~ N(0, 1)`` per element. Here the sub-network is extracted and its BN recalibrated
    once (as `FlatnessMetric`; FlatNAS scores a trained stand-alone net), ``acc0`` is measured,
    and each draw overwrites the parameters in place from one saved copy; they are restored
    bit-exactly at the end (no model copies). The noise comes from ``generator`` (on an
    accelerator from a device generator seeded by it), so a score is a function of the seed.

    Returns ``robustness``, ``accuracy`` (acc0 as a fraction) and ``top1_err`` (``100 - acc0``
    in percent, FlatNAS's ``top1``).

    Args:
        sigma: relative noise scale (FlatNAS: 0.05; only its first sigma is used).
        draws: number of noise draws M (FlatNAS: 20).
        val_images: valid images per accuracy.
        recal_images: training images for BN recalibration.
        round_to: round the robustness to this many decimals (FlatNAS rounds to 2); ``None``
            (default) keeps full precision, which avoids ties between candidates.
        bn_momentum: see `FlatnessMetric`.
        device_noise: see `FlatnessMetric`.
    """

    name = "robustness"
    higher_is_better = False

    def __init__(
        self,
        sigma: float = 0.05,
        draws: int = 20,
        val_images: int = 10000,
        recal_images: int = 850,
        round_to: int | None = None,
        bn_momentum: float | None = 0.1,
        device_noise: bool = True,
    ) -> None:
        if sigma < 0:
            raise ValueError(f"metric.sigma must be >= 0, got {sigma}")
        if draws < 1:
            raise ValueError(f"metric.draws must be >= 1, got {draws}")
        if recal_images < 1 or val_images < 1:
            raise ValueError("metric.recal_images and metric.val_images must be >= 1")
        if round_to is not None and round_to < 0:
            raise ValueError(f"metric.round_to must be >= 0 or null, got {round_to}")
        self.sigma, self.draws, self.round_to = float(sigma), draws, round_to
        self.val_images, self.recal_images, self.bn_momentum = val_images, recal_images, bn_momentum
        self.device_noise = device_noise
        self._batches = DeviceBatchCache()

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        net = ctx.space.extract(ctx.supernet, arch)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        recalibrate_bn(
            net, ctx.data.train_loader(seed), self.recal_images, self.bn_momentum, ctx.device
        )
        loader = self._batches.loader(ctx.data, "valid", self.val_images, ctx.device)
        acc0 = 100.0 * ctx.runner.evaluate(net, loader).accuracy
        params = [p for p in net.parameters()]
        saved = [p.detach().clone() for p in params]
        device = params[0].device if params else ctx.device
        gen = noise_generator(generator, device, self.device_noise)
        diffs: list[float] = []
        try:
            for _ in range(self.draws):
                with torch.no_grad():
                    for p, w in zip(params, saved, strict=True):
                        r = torch.randn(p.shape, generator=gen, device=gen.device).to(p.device)
                        p.copy_(w).addcmul_(w, r, value=self.sigma)
                acc = 100.0 * ctx.runner.evaluate(net, loader).accuracy
                diffs.append(abs(acc0 - acc))
        finally:
            with torch.no_grad():
                for p, w in zip(params, saved, strict=True):
                    p.copy_(w)
        rob = sum(diffs) / len(diffs)
        if self.round_to is not None:
            rob = round(rob, self.round_to)
        return {self.name: rob, "accuracy": acc0 / 100.0, "top1_err": 100.0 - acc0}


def top1_robust(err: float, rob: float, alpha: float = 0.5, alpha_norm: float = 1.0) -> float:
    """FlatNAS ``top1_robust = alpha * top1_err + alpha_norm * (1 - alpha) * robustness``.

    ``err`` and ``rob`` are in percent (``top1_err``, ``robustness`` of `RobustnessMetric`);
    lower is better. FlatNAS's defaults: ``alpha = 0.5``, ``alpha_norm = 1.0`` (the DOE's).
    """
    return alpha * err + alpha_norm * (1.0 - alpha) * rob


def alpha_norm(errs: Sequence[float], robs: Sequence[float]) -> float:
    """FlatNAS ``compute_alpha_norm``: ``mean(top1_err) / mean(robustness)``.

    Over all networks evaluated so far; FlatNAS recomputes it at the start of every iteration
    and then rescores every archive entry with `top1_robust` (which needs a hook in the search
    loop). Returns 1.0 (the DOE value) when the mean robustness is 0, where no scale exists.
    """
    if len(errs) != len(robs) or not errs:
        raise ValueError("alpha_norm needs equally many, and at least one, errors and robustnesses")
    mean_rob = sum(robs) / len(robs)
    if mean_rob == 0:
        return 1.0
    return (sum(errs) / len(errs)) / mean_rob
