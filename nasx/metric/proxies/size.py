"""NASLib's ``params`` and ``flops`` baselines: bigger networks rank higher."""

from __future__ import annotations

import torch

from nasx.metric.base import Metric, MetricContext
from nasx.objective import FlopsObjective, ParamsObjective
from nasx.search_space.base import Architecture


class ParamsMetric(Metric):
    """Trainable parameters of the stand-alone network in millions (`ParamsObjective`).

    Higher is better, as NASLib's ``params`` proxy.
    """

    name = "params"
    higher_is_better = True
    needs_valid = False
    needs_supernet = False

    def __init__(self) -> None:
        self._objective = ParamsObjective()

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        return {self.name: self._objective(arch, ctx.space)}


class FlopsMetric(Metric):
    """Forward MACs at the space's input size in millions (`FlopsObjective`).

    "FLOPs" as in NAS-Bench-201; higher is better, as NASLib's ``flops`` proxy.
    """

    name = "flops"
    higher_is_better = True
    needs_valid = False
    needs_supernet = False

    def __init__(self) -> None:
        self._objective = FlopsObjective()

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        return {self.name: self._objective(arch, ctx.space)}
