"""GeNAS combined scores: ``angle+wlm`` and ``acc+wlm`` (``cand_evaluator.py:142-227``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from nasx.metric.accuracy import AccuracyMetric
from nasx.metric.angle import AngleMetric
from nasx.metric.base import Metric, MetricContext
from nasx.metric.flatness import FlatnessMetric
from nasx.search_space.base import Architecture


def _shares(terms: dict[str, float]) -> dict[str, float]:
    """Each term's share of their sum (GeNAS prints these as percentages); 0 for a zero sum."""
    total = sum(terms.values())
    return {f"{k}_share": (v / total if total != 0 else 0.0) for k, v in terms.items()}


class AngleFlatnessMetric(Metric):
    """GeNAS ``angle+wlm``: ``angle / pi + gamma * beta * wlm`` (higher is better).

    ``gamma`` is ``wlm_weight`` (GeNAS README: 16) and ``beta = 1 / stds[0]`` (1000 for the
    README stds), so with wlm about 5e-4 the flatness term (about 8) dominates the angle term
    (0.3-0.5). The angle is `AngleMetric`'s (radians, divided by pi); wlm is `FlatnessMetric`'s
    with the arguments below. Diagnostics: ``angle`` (radians), ``flatness`` (wlm), the two
    terms ``angle_term`` / ``flatness_term``, their shares of the score ``angle_share`` /
    ``flatness_share``, and the flatness losses ``loss_std*``.

    Args:
        stds, recal_images, val_images, noise, bn_momentum, device_noise: see `FlatnessMetric`.
        wlm_weight: gamma, the weight of the flatness term.
    """

    name = "angle_flatness"
    higher_is_better = True

    def __init__(
        self,
        stds: Sequence[float] = (0.001, 0.003, 0.006),
        wlm_weight: float = 16.0,
        recal_images: int = 850,
        val_images: int = 25000,
        noise: str = "cumulative",
        bn_momentum: float | None = 0.1,
        device_noise: bool = True,
    ) -> None:
        self.angle = AngleMetric(normalize=False)
        self.flatness = FlatnessMetric(
            stds, recal_images, val_images, noise, bn_momentum, device_noise
        )
        self.wlm_weight = float(wlm_weight)

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        angle = self.angle(arch, ctx, generator)["angle"]
        flat = self.flatness(arch, ctx, generator)
        terms = {
            "angle": angle / math.pi,
            "flatness": self.wlm_weight / self.flatness.stds[0] * flat["flatness"],
        }
        out = {self.name: terms["angle"] + terms["flatness"], "angle": angle}
        out.update(flat)
        out.update({f"{k}_term": v for k, v in terms.items()})
        out.update(_shares(terms))
        return out


class AccuracyFlatnessMetric(Metric):
    """GeNAS ``acc+wlm``: ``acc + gamma * beta * wlm`` (higher is better).

    ``acc`` is `AccuracyMetric`'s top-1 fraction with GeNAS's hard-coded 15000 recalibration
    and 25000 valid images (``cand_evaluator.py:146-147``); wlm is then measured separately
    (its own recalibration, as GeNAS does on a copy). ``gamma = wlm_weight``,
    ``beta = 1 / stds[0]``. GeNAS's ``--acc_weight`` is **not** applied in ``acc+wlm`` (only in
    ``angle+acc``), so there is no such option here. The generator is read by the accuracy
    first, then by the flatness. Diagnostics: ``accuracy``, ``valid_loss``, ``flatness``,
    ``accuracy_term`` / ``flatness_term``, their shares, and ``loss_std*``.

    Args:
        stds, recal_images, val_images, noise, bn_momentum, device_noise: see `FlatnessMetric`
            (``bn_momentum`` serves both recalibrations).
        wlm_weight: gamma, the weight of the flatness term (GeNAS's one ``--wlm_weight``).
        acc_recal_images: recalibration images of the accuracy (GeNAS: 15000).
        acc_val_images: valid images of the accuracy (GeNAS: 25000).
    """

    name = "accuracy_flatness"
    higher_is_better = True

    def __init__(
        self,
        stds: Sequence[float] = (0.001, 0.003, 0.006),
        wlm_weight: float = 16.0,
        recal_images: int = 850,
        val_images: int = 25000,
        acc_recal_images: int = 15000,
        acc_val_images: int = 25000,
        noise: str = "cumulative",
        bn_momentum: float | None = 0.1,
        device_noise: bool = True,
    ) -> None:
        self.accuracy = AccuracyMetric(acc_recal_images, acc_val_images, bn_momentum)
        self.flatness = FlatnessMetric(
            stds, recal_images, val_images, noise, bn_momentum, device_noise
        )
        self.wlm_weight = float(wlm_weight)

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        acc = self.accuracy(arch, ctx, generator)
        flat = self.flatness(arch, ctx, generator)
        terms = {
            "accuracy": acc["accuracy"],
            "flatness": self.wlm_weight / self.flatness.stds[0] * flat["flatness"],
        }
        out = {self.name: terms["accuracy"] + terms["flatness"]}
        out.update(acc)
        out.update(flat)
        out.update({f"{k}_term": v for k, v in terms.items()})
        out.update(_shares(terms))
        return out
