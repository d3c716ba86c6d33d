"""RLNAS/GeNAS angle: how far training rotated the weights on the architecture's paths."""

from __future__ import annotations

import math

import torch

from nasx.metric.base import Metric, MetricContext
from nasx.search_space.base import Architecture


class AngleMetric(Metric):
    """``arccos(cos(v(W_0), v(W_T)))`` in radians, where ``v`` gathers the path weights.

    The supernet defines ``v`` (`nasx.supernet.Supernet.path_weights`); an architecture
    with no input-to-output path scores 0, the worst value (RLNAS).

    Args:
        normalize: divide by pi (GeNAS's form inside combined scores).
    """

    name = "angle"
    higher_is_better = True
    needs_valid = False

    def __init__(self, normalize: bool = False) -> None:
        self.normalize = normalize
        self.ideal = 1.0 if normalize else math.pi  # the largest angle between two vectors

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        if ctx.init_state is None:
            raise RuntimeError("the angle metric needs the supernet's initial weights")
        supernet = ctx.trained_supernet
        v0 = supernet.path_weights(ctx.init_state, arch)
        v1 = supernet.path_weights(ctx.final_state, arch)
        if v0 is None or v1 is None:
            return {self.name: 0.0}
        cos = torch.nn.functional.cosine_similarity(v0.double(), v1.double(), dim=0)
        angle = math.acos(float(cos.clamp(-1.0, 1.0)))
        return {self.name: angle / math.pi if self.normalize else angle}
