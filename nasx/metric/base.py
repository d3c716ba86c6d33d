"""The metric contract: score one architecture; every metric declares its direction."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from nasx.metric.context import EvalResult as EvalResult
from nasx.metric.context import EvalRunner as EvalRunner
from nasx.metric.context import MetricContext as MetricContext
from nasx.search_space.base import Architecture


class Metric(ABC):
    """Base class of every ``metric=`` option (template method: `__call__` -> `_compute`).

    `_compute` returns the score under the key `name` and may add diagnostics under other keys.
    The generator is derived from the run seed and the architecture, so a score does not depend
    on the order in which architectures are evaluated (resume gives identical values).
    """

    name: str = "metric"
    higher_is_better: bool = True
    #: whether the metric reads supernet weights (a supernet stage must run before the search)
    needs_supernet: bool = True
    #: the best score the metric can take (an accuracy fraction: 1.0; an error, a robustness:
    #: 0.0; the angle: pi), or ``None`` when it has no bound (zero-cost proxies). The
    #: hypervolume box and the selection measure the first objective from it.
    ideal: float | None = None
    #: whether the metric reads the valid split (``dataset.valid_fraction=0`` leaves it empty)
    needs_valid: bool = True
    #: turns ``|score - ideal|`` into the papers' units: 100 for an accuracy fraction, whose
    #: distance from the ideal is then the top-1 error in %, as NSGANetV2 and CNAS count it
    error_scale: float = 1.0
    #: other values the metric measures that a cost may read (`nasx.objective.base.
    #: MeasuredObjective`, e.g. ``avg_macs`` of an early-exit network)
    outputs: tuple[str, ...] = ()

    def __call__(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        """Score ``arch``; the returned dict always holds ``self.name``.

        Values are floats; a diagnostic may be a list of floats (per-exit statistics of an
        early-exit network).
        """
        out = self._compute(arch, ctx, generator)
        if self.name not in out:
            raise RuntimeError(f"metric {type(self).__name__} did not return {self.name!r}")
        return {
            k: [float(x) for x in v] if isinstance(v, list | tuple) else float(v)
            for k, v in out.items()
        }

    @abstractmethod
    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        """Compute the score and diagnostics."""

    def artifacts(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, Any]:
        """Files the select stage writes beside a selected architecture; none by default.

        ``{file name: object}``, each saved with ``torch.save`` into ``final/<name>/``
        (an early-exit metric exports its trained network). ``generator`` is the one the
        search evaluated ``arch`` with, so a deterministic metric rebuilds what it scored.
        """
        return {}

    def rescore(self, archive: list[dict[str, float]]) -> dict[str, float] | None:
        """Hook for archive-dependent scores, called by the search loop before every iteration.

        ``archive`` holds the metric dicts of every successful evaluation so far. A metric whose
        score depends on them (FlatNAS ``top1_robust``) updates its state, rewrites the score of
        each dict in place and returns the state to record in the iteration file; the default
        returns ``None`` (scores never change).
        """
        return None
