"""FlatNAS robustness (accuracy change under weight noise) and ``top1_robust``.

``top1_robust`` blends error and robustness with a scale refreshed from the archive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from nasx.metric.base import Metric, MetricContext
from nasx.metric.flatness import noise_generator
from nasx.optim.finetune import FinetuneSpec
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
        finetune_epochs: fine-tune each candidate this many epochs before scoring (FlatNAS
            trains every candidate for 1 epoch with ASAM; 0, the default, scores the
            inherited supernet weights after BN recalibration).
        finetune_optimizer: ``asam`` (FlatNAS), ``sam`` or ``sgd``.
        finetune_lr: base SGD learning rate (FlatNAS: 0.1, momentum 0.9, wd 5e-5).
        finetune_rho: SAM/ASAM radius (FlatNAS: 2.0).
        finetune_batches: limit each fine-tuning epoch to this many batches (``None``: all).
        finetune_schedule: ``cosine`` (to 0 over all steps) or ``cnas_per_batch`` (CNAS's
            ``CosineAnnealingLR(T_max=epochs)`` stepped every batch; see `FinetuneSpec`).
        valid_corruptions: score on the valid images corrupted by these CIFAR-C corruptions
            (FlatNAS's out-of-distribution search; `MetricContext.corrupted_valid_loader`)
            instead of the clean ones; ``None`` (default): clean.
        valid_severities: the severities of ``valid_corruptions`` (each corrupts every image).
    """

    name = "robustness"
    higher_is_better = False
    ideal = 0.0

    def __init__(
        self,
        sigma: float = 0.05,
        draws: int = 20,
        val_images: int = 10000,
        recal_images: int = 850,
        round_to: int | None = None,
        bn_momentum: float | None = 0.1,
        device_noise: bool = True,
        finetune_epochs: int = 0,
        finetune_optimizer: str = "asam",
        finetune_lr: float = 0.1,
        finetune_rho: float = 2.0,
        finetune_batches: int | None = None,
        finetune_schedule: str = "cosine",
        valid_corruptions: Sequence[str] | None = None,
        valid_severities: Sequence[int] = (3,),
    ) -> None:
        if sigma < 0:
            raise ValueError(f"metric.sigma must be >= 0, got {sigma}")
        if draws < 1:
            raise ValueError(f"metric.draws must be >= 1, got {draws}")
        if recal_images < 1 or val_images < 1:
            raise ValueError("metric.recal_images and metric.val_images must be >= 1")
        if round_to is not None and round_to < 0:
            raise ValueError(f"metric.round_to must be >= 0 or null, got {round_to}")
        self.valid_corruptions = _check_corruptions(valid_corruptions, valid_severities)
        self.valid_severities = [int(v) for v in valid_severities]
        self.sigma, self.draws, self.round_to = float(sigma), draws, round_to
        self.val_images, self.recal_images, self.bn_momentum = val_images, recal_images, bn_momentum
        self.device_noise = device_noise
        self.finetune = FinetuneSpec(
            epochs=finetune_epochs,
            optimizer=finetune_optimizer,
            lr=finetune_lr,
            rho=finetune_rho,
            max_batches=finetune_batches,
            schedule=finetune_schedule,
        )

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        # a fine-tuned candidate keeps the BN statistics of its own training (FlatNAS)
        net = ctx.calibrated(
            arch, generator, self.recal_images, self.bn_momentum, finetune=self.finetune
        )
        if self.valid_corruptions is None:
            loader = ctx.valid_loader(self.val_images, arch)
        else:
            loader = ctx.corrupted_valid_loader(
                self.val_images, self.valid_corruptions, self.valid_severities, arch
            )
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
        return {"robustness": rob, "accuracy": acc0 / 100.0, "top1_err": 100.0 - acc0}


def _check_corruptions(names: Sequence[str] | None, severities: Sequence[int]) -> list[str] | None:
    """``metric.valid_corruptions`` as a list; `ValueError` naming the choices when unknown."""
    if names is None:
        return None
    from nasx.ood import CORRUPTIONS, SEVERITIES

    out = [str(c) for c in names]
    unknown = sorted(set(out) - set(CORRUPTIONS))
    if not out or unknown:
        raise ValueError(
            f"metric.valid_corruptions: unknown or no corruptions {unknown}: use some of "
            f"{', '.join(CORRUPTIONS)}, or null for the clean valid images"
        )
    if not severities or any(int(v) not in SEVERITIES for v in severities):
        raise ValueError(f"metric.valid_severities={list(severities)}: use some of 1-5")
    return out


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


class Top1RobustMetric(RobustnessMetric):
    """FlatNAS ``top1_robust = alpha * top1_err + alpha_norm * (1 - alpha) * robustness``.

    Lower is better. With ``alpha_norm: null`` (FlatNAS), the scale is refreshed at the start
    of every search iteration from every architecture evaluated so far (`rescore`), and the
    whole archive is rescored with it; architectures evaluated in an iteration carry that
    iteration's value (1.0 before anything was evaluated, FlatNAS's DOE value). A number
    fixes the scale. Every other argument is `RobustnessMetric`'s.

    Args:
        alpha: weight of the error (FlatNAS: 0.5).
        alpha_norm: fixed scale, or ``None`` for FlatNAS's adaptive one.
        **kwargs: `RobustnessMetric` arguments.
    """

    name = "top1_robust"
    higher_is_better = False
    ideal = 0.0

    def __init__(self, alpha: float = 0.5, alpha_norm: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"metric.alpha must be in [0, 1], got {alpha}")
        if alpha_norm is not None and alpha_norm <= 0:
            raise ValueError(f"metric.alpha_norm must be > 0 or null, got {alpha_norm}")
        self.alpha, self.fixed_norm = float(alpha), alpha_norm
        self.current_norm = 1.0 if alpha_norm is None else float(alpha_norm)

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        out = super()._compute(arch, ctx, generator)
        out["alpha_norm"] = self.current_norm
        out[self.name] = self.score(out)
        return out

    def score(self, values: dict[str, float]) -> float:
        """``top1_robust`` of stored ``top1_err`` and ``robustness`` with the current scale."""
        return top1_robust(
            values["top1_err"], values["robustness"], self.alpha, values["alpha_norm"]
        )

    def rescore(self, archive: list[dict[str, float]]) -> dict[str, float] | None:
        """Refresh ``alpha_norm`` from ``archive`` (FlatNAS ``compute_alpha_norm``).

        Sets every entry's ``alpha_norm`` and score in place and returns ``{"alpha_norm": x}``
        for the iteration file; ``None`` when the scale is fixed.
        """
        if self.fixed_norm is not None:
            return None
        if archive:
            self.current_norm = alpha_norm(
                [v["top1_err"] for v in archive], [v["robustness"] for v in archive]
            )
        for values in archive:
            values["alpha_norm"] = self.current_norm
            values[self.name] = self.score(values)
        return {"alpha_norm": self.current_norm}
