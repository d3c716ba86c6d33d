"""Scores architectures: the metric plus every cost, with failures recorded, never raised."""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasx.hypervolume import ObjectiveUnits
from nasx.io import Journal, write_json_atomic
from nasx.metric.base import Metric, MetricContext
from nasx.objective.base import MeasuredObjective, Objective
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
        for c in costs:
            if isinstance(c, MeasuredObjective) and c.key not in metric.outputs:
                raise ValueError(
                    f"objective {c.name} is measured by the metric, but metric={metric.name} "
                    f"does not measure {c.key!r}: use a metric that does (an early-exit metric "
                    "for avg_macs)"
                )
        self.space, self.metric, self.costs, self.ctx, self.seed = space, metric, costs, ctx, seed

    @property
    def n_obj(self) -> int:
        """Number of minimised objectives (metric + costs)."""
        return 1 + len(self.costs)

    @property
    def n_constr(self) -> int:
        """Number of pymoo inequality constraints (costs bounded with ``handling=constraint``)."""
        return sum(1 for c in self.costs if c.is_constraint)

    @property
    def measured(self) -> tuple[bool, ...]:
        """Per cost column of ``F``: whether the metric measures it (no exact value before)."""
        return tuple(c.measured for c in self.costs)

    def population_costs(self, F: np.ndarray) -> np.ndarray:
        """The cost columns a population-based search minimises (`Objective.population`)."""
        F = np.array(F, dtype=float).reshape(len(F), len(self.costs))
        for j, c in enumerate(self.costs):
            F[:, j] = c.population(F[:, j])
        return F

    def cost_row(
        self, arch: Architecture, measured: Sequence[float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The minimised cost columns of ``F`` (penalised where asked) and ``G`` of ``arch``.

        Exact and cached by each cost; the surrogate-assisted search calls it on candidates
        it never evaluates for real. A measured cost (`measured`) has no value before an
        evaluation: ``measured`` gives predicted values for those columns, in order, and
        without it they are NaN.
        """
        given = iter(measured if measured is not None else [])
        values = [
            float(next(given, math.nan)) if c.measured else c(arch, self.space) for c in self.costs
        ]
        return self._row(values)

    def _row(self, values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """``(F cost columns, G)`` of raw cost values."""
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

    def evaluate(self, archs: Sequence[Architecture]) -> list[dict[str, Any]]:
        """One record per architecture, in order (the batch call of search and correlate)."""
        return list(self.evaluate_iter(archs))

    def evaluate_iter(self, archs: Sequence[Architecture]) -> Iterator[dict[str, Any]]:
        """The records of ``archs`` in order, each yielded as soon as it is complete.

        Each score depends only on the run seed and its architecture (`arch_generator`), so
        a backend that evaluates the batch in parallel yields the same records.
        """
        for arch in archs:
            yield self._evaluate_one(arch)

    def __call__(self, arch: Architecture) -> dict[str, Any]:
        """The record of one architecture (``evaluate([arch])[0]``)."""
        return self._evaluate_one(arch)

    def _evaluate_one(self, arch: Architecture) -> dict[str, Any]:
        """One record: arch string, genes, metric values, costs, ``F``; or the failure."""
        rec: dict[str, Any] = {"arch": self.space.to_str(arch), "genes": list(arch.genes)}
        start = time.perf_counter()
        try:
            metric = self.metric(arch, self.ctx, arch_generator(self.seed, arch))
            costs = {
                c.name: c.value_of(metric)
                if isinstance(c, MeasuredObjective)
                else c(arch, self.space)
                for c in self.costs
            }
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
        F, G = self._row([costs[c.name] for c in self.costs])
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


def safe_name(arch: str) -> str:
    """A file-name-safe form of an architecture string."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in arch).strip("_")[:180]


class JournaledEvaluation:
    """Evaluate batches through a journal: the one resumable "evaluate and journal" routine.

    A record already in the journal is answered from it; every other architecture of the
    batch goes to `Evaluator.evaluate_iter`, and each record is appended to the journal as
    soon as it is complete, so a killed run loses no finished evaluation and a re-run with
    the same seed continues where it stopped. The search loop and the correlate stage both
    evaluate through it.

    Args:
        evaluator: scores architectures.
        journal: the JSON-lines journal (read once here).
        failed_dir: where a failed evaluation's record is also written (``None``: nowhere).
        keep: keys of a record to journal (``None``: all).
    """

    def __init__(
        self,
        evaluator: Evaluator,
        journal: Journal,
        failed_dir: Path | None = None,
        keep: tuple[str, ...] | None = None,
    ) -> None:
        self.evaluator, self.journal = evaluator, journal
        self.failed_dir, self.keep = failed_dir, keep
        self.cached: dict[str, dict[str, Any]] = {r["arch"]: r for r in journal.read()}

    def __call__(
        self,
        archs: Sequence[Architecture],
        annotate: Callable[[dict[str, Any], int], dict[str, Any]] | None = None,
        on_record: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """The records of ``archs`` (distinct), in order.

        ``annotate(record, position)`` adds fields to a new record before it is journaled
        (position: its index in ``archs``); ``on_record(position, record)`` is called for
        every record, cached or new, in order (progress bars). ``archs`` must be distinct.
        """
        keys = [self.evaluator.space.to_str(a) for a in archs]
        todo = [i for i, key in enumerate(keys) if key not in self.cached]
        fresh = self.evaluator.evaluate_iter([archs[i] for i in todo])
        out: list[dict[str, Any]] = []
        for i, key in enumerate(keys):
            rec = self.cached.get(key)
            if rec is None:
                rec = next(fresh)
                if annotate is not None:
                    rec = annotate(rec, i)
                if self.keep is not None:
                    rec = {k: rec[k] for k in self.keep if k in rec}
                self.journal.append(rec)
                if rec.get("failed") and self.failed_dir is not None:
                    write_json_atomic(self.failed_dir / f"{safe_name(rec['arch'])}.json", rec)
                self.cached[key] = rec
            out.append(rec)
            if on_record is not None:
                on_record(i, rec)
        return out
