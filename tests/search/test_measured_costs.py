"""Costs the metric measures (avg_macs): records, a second surrogate, NACHOS's feasibility form."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from nasx.data import FakeData
from nasx.errors import NasxError
from nasx.evaluator import Evaluator
from nasx.metric import BenchmarkMetric, MetricContext, TorchRunner
from nasx.objective import AvgMacsObjective, FlopsObjective
from nasx.search import MSuNASSearch
from nasx.search_loop import SearchLoop
from nasx.search_space import NB201Space
from tests.search.test_msunas import ACC, LinearSurrogate

LAT = "latency_ms_pixel3"


class MeasuringMetric(BenchmarkMetric):
    """The table's accuracy plus a measured ``avg_macs`` (here: 10 x the pixel3 latency)."""

    outputs = ("avg_macs",)

    def _compute(self, arch, ctx, generator):
        out = super()._compute(arch, ctx, generator)
        out["avg_macs"] = 10.0 * ctx.space.ground_truth(arch)[LAT]
        return out


def space() -> NB201Space:
    return NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8)


def evaluator(sp: NB201Space, cost: AvgMacsObjective, metric=None) -> Evaluator:
    ctx = MetricContext(space=sp, supernet=None, data=FakeData(), runner=TorchRunner())
    return Evaluator(sp, metric or MeasuringMetric(column=ACC), [cost], ctx, seed=0)


def test_feasibility_weighted_bound_by_hand() -> None:
    cost = AvgMacsObjective(upper=2.0, handling="feasibility", penalty=10.0)
    values = np.array([1.0, 2.0, 3.0, 5.0])
    phi = 0.5  # two of four meet mmax
    want = phi * values + (1 - phi) * np.array([0, 0, 1, 3]) * 10.0
    np.testing.assert_allclose(cost.population(values), want)
    assert not cost.is_constraint and cost.penalized(3.0) == 3.0  # records keep raw values
    np.testing.assert_allclose(AvgMacsObjective().population(values), values)  # no mmax
    with pytest.raises(ValueError, match="handling=penalty"):
        AvgMacsObjective(upper=1.0, handling="penalty")
    with pytest.raises(ValueError, match="measured"):
        AvgMacsObjective()(space().sample(np.random.default_rng(0)), space())


def test_records_read_the_measured_value_and_rows_predict_it() -> None:
    sp = space()
    ev = evaluator(sp, AvgMacsObjective(upper=20.0, handling="constraint"))
    arch = sp.sample(np.random.default_rng(1))
    rec = ev(arch)
    want = 10.0 * sp.ground_truth(arch)[LAT]
    assert rec["objectives"]["avg_macs"] == pytest.approx(want)
    assert rec["F"][1] == pytest.approx(want) and rec["G"] == [pytest.approx(max(0, want - 20))]
    F, _ = ev.cost_row(arch)
    assert math.isnan(F[0])  # no value before an evaluation
    F, G = ev.cost_row(arch, [25.0])
    assert F.tolist() == [25.0] and G.tolist() == [5.0]
    assert ev.measured == (True,)
    with pytest.raises(ValueError, match="does not measure 'avg_macs'"):
        evaluator(sp, AvgMacsObjective(), metric=BenchmarkMetric(column=ACC))


def test_msunas_fits_a_second_surrogate_for_the_measured_cost(tmp_path: Path) -> None:
    sp = space()
    ev = evaluator(sp, AvgMacsObjective(upper=60.0))
    strategy = MSuNASSearch(
        n_evals=34,
        surrogate=LinearSurrogate(),
        sec_surrogate=LinearSurrogate(),
        n_doe=16,
        n_candidates=6,
        surrogate_pop_size=20,
        surrogate_generations=5,
        subset_pop_size=20,
        subset_generations=10,
        doe_extremes=False,
    )
    strategy.setup(sp, ev.n_obj, 0, ev.n_constr, ev.cost_row, ev.measured, ev.population_costs)
    records = SearchLoop(tmp_path, strategy, ev, progress=False).run()
    assert len(records) == 34
    its = [
        json.loads((tmp_path / f"iter_{k}.json").read_text())
        for k in range(len(list(tmp_path.glob("iter_*.json"))))
    ]
    assert "sec_surrogate" not in its[0]
    reports = [it["sec_surrogate"] for it in its[1:]]
    assert all(len(r) == 1 and r[0]["name"] == "linear" for r in reports)
    # one copy of the second surrogate per measured cost, fitted every iteration
    assert strategy._sec[0].fits == len(its) - 1 and strategy.sec_surrogate.fits == 0
    # the latency is nearly additive in the ops: the linear second surrogate ranks it well
    assert reports[-1][0]["rho"] > 0.8


def test_msunas_without_a_second_surrogate_is_refused() -> None:
    sp = space()
    ev = evaluator(sp, AvgMacsObjective())
    strategy = MSuNASSearch(n_evals=10, surrogate=LinearSurrogate(), n_doe=4)
    with pytest.raises(ValueError, match="second surrogate"):
        strategy.setup(sp, ev.n_obj, 0, ev.n_constr, ev.cost_row, ev.measured)


def test_pipeline_refuses_a_measured_cost_the_metric_does_not_measure(compose_cfg) -> None:
    from nasx.pipeline import build_parts

    with pytest.raises(NasxError, match="avg_macs.*early-exit metric"):
        build_parts(compose_cfg("objective=avg_macs", "metric=benchmark", "space=nb201"))


def test_other_costs_keep_exact_rows() -> None:
    sp = space()
    ctx = MetricContext(space=sp, supernet=None, data=FakeData(), runner=TorchRunner())
    ev = Evaluator(sp, BenchmarkMetric(column=ACC), [FlopsObjective()], ctx, seed=0)
    arch = sp.sample(np.random.default_rng(2))
    assert ev.measured == (False,) and np.isfinite(ev.cost_row(arch)[0]).all()
