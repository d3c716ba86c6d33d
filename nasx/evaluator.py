"""Scores architectures: the metric plus every cost, with failures recorded, never raised."""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from nasx.hypervolume import ObjectiveUnits
from nasx.metric.base import Metric, MetricContext
from nasx.objective.base import Objective
from nasx.search_space.base import Architecture, SearchSpace

#: objective value given to a failed evaluation (finite, so pymoo can rank it last)
FAILED_VALUE = 1e10


def arch_generator(seed: int, arch: Architecture) -> torch.Generator:
    """A torch generator fixed by the run seed and the architecture alone.

    Scores then do not depend on evaluation order, which makes a resumed or re-ordered search
    reproduce the same values.
    """
    state = np.random.SeedSequence([seed, *arch.genes]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def objective_units(metric: Metric, n_costs: int) -> ObjectiveUnits:
    """The paper units of ``F`` = (metric, negated when maximised; costs), see `ObjectiveUnits`.

    The metric's column is measured from its ideal score (``nan`` when it has none) and scaled
    by its ``error_scale``; every cost is non-negative with ideal 0.
    """
    sign = -1.0 if metric.higher_is_better else 1.0
    first = float("nan") if metric.ideal is None else sign * float(metric.ideal)
    return ObjectiveUnits((first, *[0.0] * n_costs), (float(metric.error_scale), *[1.0] * n_costs))


class Evaluator:
    """Turns architectures into archive records.

    Args:
        space: the search space.
        metric: the score (its direction decides the sign of the first objective).
        costs: the costs, minimised.
        ctx: what the metric reads (supernet, data, runner).
        seed: run seed.
    """

    def __init__(
        self,
        space: SearchSpace,
        metric: Metric,
        costs: Sequence[Objective],
        ctx: MetricContext,
        seed: int,
    ) -> None:
        self.space, self.metric, self.costs, self.ctx, self.seed = space, metric, costs, ctx, seed

    @property
    def n_obj(self) -> int:
        """Number of minimised objectives (metric + costs)."""
        return 1 + len(self.costs)

    @property
    def n_constr(self) -> int:
        """Number of pymoo inequality constraints (costs bounded with ``handling=constraint``)."""
        return sum(1 for c in self.costs if c.is_constraint)

    def cost_row(self, arch: Architecture) -> tuple[np.ndarray, np.ndarray]:
        """The minimised cost columns of ``F`` (penalised where asked) and ``G`` of ``arch``.

        Exact and cached by each cost; the surrogate-assisted search calls it on candidates
        it never evaluates for real.
        """
        values = [c(arch, self.space) for c in self.costs]
        F = [c.penalized(v) for c, v in zip(self.costs, values, strict=True)]
        G = [c.violation(v) for c, v in zip(self.costs, values, strict=True) if c.is_constraint]
        return np.asarray(F, dtype=float), np.asarray(G, dtype=float)

    @property
    def units(self) -> ObjectiveUnits:
        """How the columns of ``F`` map to the papers' units (`objective_units`)."""
        return objective_units(self.metric, len(self.costs))

    @property
    def objective_names(self) -> list[str]:
        """Names of the columns of ``F``."""
        sign = "-" if self.metric.higher_is_better else ""
        return [sign + self.metric.name] + [c.name for c in self.costs]

    def __call__(self, arch: Architecture) -> dict[str, Any]:
        """One record: arch string, genes, metric values, costs, ``F``; or the failure."""
        rec: dict[str, Any] = {"arch": self.space.to_str(arch), "genes": list(arch.genes)}
        start = time.perf_counter()
        try:
            metric = self.metric(arch, self.ctx, arch_generator(self.seed, arch))
            costs = {c.name: c(arch, self.space) for c in self.costs}
        except Exception as exc:  # recorded with its reason; the search goes on
            rec.update(
                failed=True,
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
                F=[FAILED_VALUE] * self.n_obj,
                G=[FAILED_VALUE] * self.n_constr,
            )
            return rec
        score = metric[self.metric.name]
        if not np.isfinite(score):
            rec.update(
                failed=True,
                error=f"metric {self.metric.name} is {score}",
                F=[FAILED_VALUE] * self.n_obj,
                G=[FAILED_VALUE] * self.n_constr,
                metric=metric,
            )
            return rec
        f0 = -score if self.metric.higher_is_better else score
        F, G = self.cost_row(arch)
        rec.update(
            failed=False,
            metric=metric,
            objectives=costs,
            F=[f0, *F.tolist()],
            G=G.tolist(),
            feasible=bool(np.all(G <= 0)) and all(c.feasible(costs[c.name]) for c in self.costs),
            ground_truth={
                k: v
                for k, v in self.space.ground_truth(arch).items()
                if not k.startswith("latency")
            },
            seconds=round(time.perf_counter() - start, 4),
        )
        return rec
