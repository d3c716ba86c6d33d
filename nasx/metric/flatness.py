"""GeNAS ``wlm``: wide and flat minima, from the loss under growing weight perturbations."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from nasx.data.base import ImageData
from nasx.metric.base import Metric, MetricContext
from nasx.metric.bn import recalibrate_bn
from nasx.search_space.base import Architecture

_Batch = tuple[torch.Tensor, torch.Tensor]


class _Batches(Dataset[_Batch]):
    """Ready-made ``(x, y)`` batches; served by a ``batch_size=None`` loader as they are."""

    def __init__(self, batches: list[_Batch]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> _Batch:
        return self.batches[i]


class DeviceBatchCache:
    """The first ``limit`` images of a split, cut once into eval batches on a device.

    `loader` returns a ``DataLoader`` over those batches (no per-image indexing or collation;
    the batches are the ones of ``ImageData.eval_loader(split, limit)``, so every loss and
    accuracy is bit-identical to it). One entry is kept, keyed by the split tensor itself,
    the limit, the batch size and the device; the entry is dropped when the owner is copied
    or pickled.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._loader: DataLoader[_Batch] | None = None

    def loader(
        self, data: ImageData, split: str, limit: int, device: torch.device
    ) -> DataLoader[_Batch]:
        """A loader over the cached batches (built on the first call for this key)."""
        x, y = data.split(split)
        key = (x, y, limit, data.eval_batch_size, str(device))
        if self._loader is None or self._key is None or not _same_key(self._key, key):
            xs, ys = x[:limit].to(device), y[:limit].to(device)
            bs = data.eval_batch_size
            batches = list(zip(torch.split(xs, bs), torch.split(ys, bs), strict=True))
            self._loader = DataLoader(_Batches(batches), batch_size=None, shuffle=False)
            self._key = key
        return self._loader

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._key, self._loader = None, None


def _same_key(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return a[0] is b[0] and a[1] is b[1] and a[2:] == b[2:]


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
