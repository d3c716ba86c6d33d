"""Tabulated ground truth as a metric: study search strategies without training anything."""

from __future__ import annotations

import logging

import torch

from nasx.errors import NasxError
from nasx.metric.base import Metric, MetricContext
from nasx.search_space.base import Architecture, SearchSpace

log = logging.getLogger(__name__)


class BenchmarkMetric(Metric):
    """A column of the space's benchmark table (e.g. NAS-Bench-201 accuracy or latency).

    Needs no supernet, so ``stages=[search,select]`` runs a strategy against the table.

    Args:
        column: a column of `SearchSpace.ground_truth` (``cifar10valid_valid_acc_12ep``, ...).
        higher_is_better: the column's direction (``false`` for latency columns).
    """

    name = "benchmark"
    needs_supernet = False
    needs_valid = False

    def __init__(
        self, column: str = "cifar10valid_valid_acc_12ep", higher_is_better: bool = True
    ) -> None:
        self.column = column
        self.higher_is_better = higher_is_better
        # accuracy columns are in %, so their distance from 100 is the top-1 error in %;
        # latencies are >= 0
        if "_acc_" in column:
            self.ideal = 100.0 if higher_is_better else None
        elif column.startswith("latency"):
            self.ideal = None if higher_is_better else 0.0
        self._checked = False

    def check_space(self, space: SearchSpace) -> None:
        """Raise `NasxError` when ``space``'s table has no column ``column``."""
        columns = list(space.ground_truth(space.decode(space.lower)))
        if not columns:
            raise NasxError(
                f"metric=benchmark needs a space with a benchmark table; "
                f"{type(space).__name__} has none: choose another metric or space"
            )
        if self.column not in columns:
            raise NasxError(
                f"metric.column={self.column!r} is not a column of {type(space).__name__}'s "
                f"table: use one of {', '.join(columns)}"
            )
        if self.column.startswith("latency") and self.higher_is_better:
            log.warning(
                "metric.column=%s is a latency but metric.higher_is_better=true: pass "
                "metric.higher_is_better=false to prefer fast architectures",
                self.column,
            )
        self._checked = True

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        if not self._checked:
            self.check_space(ctx.space)
        return {self.name: ctx.space.ground_truth(arch)[self.column]}
