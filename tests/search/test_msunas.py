"""The MSuNAS loop (search=msunas surrogate=...): DOE, surrogate search, subset selection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nasx.data import FakeData
from nasx.evaluator import Evaluator
from nasx.hypervolume import hypervolume
from nasx.metric import BenchmarkMetric, MetricContext, TorchRunner
from nasx.objective import Objective
from nasx.search import MSuNASSearch
from nasx.search.subset import select_subset
from nasx.search_loop import SearchLoop
from nasx.search_space import NB201Space

ACC = "cifar10valid_valid_acc_12ep"
LAT = "latency_ms_pixel3"


class TableLatency(Objective):
    name = "latency"

    def _compute(self, arch, space):
        return space.ground_truth(arch)[LAT]


class LinearSurrogate:
    """A least-squares linear model on one-hot genes: cheap, deterministic, imperfect."""

    name = "linear"
    winner = "linear"

    def __init__(self) -> None:
        self.fits = 0

    def _onehot(self, X):
        X = np.asarray(X, dtype=int)
        return np.column_stack(
            [np.ones(len(X))] + [X[:, i] == v for i in range(6) for v in range(5)]
        )

    def fit(self, X, y):
        self.fits += 1
        self.coef = np.linalg.lstsq(self._onehot(X).astype(float), y, rcond=None)[0]

    def predict(self, X):
        return self._onehot(X).astype(float) @ self.coef


def space() -> NB201Space:
    return NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8)


def make_loop(out: Path, n_evals=40, n_obj=2, seed=0, surrogate=None, **kw):
    sp = space()
    ctx = MetricContext(space=sp, supernet=None, data=FakeData(), runner=TorchRunner())
    costs = [TableLatency()] if n_obj == 2 else []
    ev = Evaluator(sp, BenchmarkMetric(column=ACC), costs, ctx, seed=seed)
    args = dict(
        n_evals=n_evals,
        n_doe=16,
        n_candidates=6,
        surrogate_pop_size=20,
        surrogate_generations=5,
        subset_pop_size=20,
        subset_generations=10,
    )
    args.update(kw)
    strategy = MSuNASSearch(surrogate=surrogate or LinearSurrogate(), **args)
    strategy.setup(sp, ev.n_obj, seed, ev.n_constr, ev.cost_row)
    return SearchLoop(out, strategy, ev, progress=False), strategy


def iterations(out: Path) -> list[dict]:
    files = sorted(out.glob("iter_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    return [json.loads(p.read_text()) for p in files]


def test_subset_selection_spreads_the_second_objective():
    cands = np.arange(1.0, 10.0)
    one = select_subset(np.array([0.0, 10.0]), cands, 1, seed=0)
    assert cands[one].tolist() == [5.0]
    four = select_subset(np.array([0.0, 10.0]), cands, 4, seed=0)
    assert sorted(cands[four].tolist()) == [2.0, 4.0, 6.0, 8.0]
    assert select_subset(np.array([0.0]), cands[:3], 5).all()
    # too many subsets to enumerate: the GA finds the evenly spaced choice
    many = np.concatenate([np.arange(1.0, 10.0), np.arange(10.5, 30.0, 0.5)])
    mask = select_subset(np.array([0.0, 40.0]), many, 3, pop_size=40, generations=30, seed=0)
    assert mask.sum() == 3
    spaced = np.sort(np.concatenate([[0.0, 40.0], many[mask]]))
    assert np.std(np.diff(spaced)) < 1.0


def test_msunas_doe_then_surrogate_iterations(tmp_path):
    loop, strategy = make_loop(tmp_path)
    records = loop.run()
    assert len(records) == 40
    its = iterations(tmp_path)
    # DOE of 16 (smallest and largest latency first), then batches of 6 (last one cut)
    assert [it["n_evals"] for it in its] == [16, 22, 28, 34, 40]
    assert its[0]["surrogate"] is None
    sp = space()
    lat = [sp.ground_truth(sp.parse(a))[LAT] for a in its[0]["candidates"]]
    extremes = [sp.ground_truth(a)[LAT] for a in sp.extremes()]
    assert lat[0] == pytest.approx(min(extremes)) and lat[1] == pytest.approx(max(extremes))
    for it in its[1:-1]:
        rep = it["surrogate"]
        assert rep["name"] == rep["winner"] == "linear"
        assert {"rmse", "rho", "tau"} <= set(rep)
        assert rep["rmse"] >= 0 and -1 <= rep["tau"] <= 1
        assert len(it["candidates"]) == 6
    assert strategy.surrogate.fits == 4
    # every proposal is new, and the HV with the DOE's fixed reference never shrinks
    archs = [r["arch"] for r in records]
    assert len(set(archs)) == len(archs)
    hvs = [it["hv"] for it in its]
    assert hvs == sorted(hvs) and hvs[-1] > hvs[0]
    # NSGANetV2's HV: (error in %, latency) in the box [0, 1.01 x DOE worst], as a fraction
    doe = np.array([[100 + r["F"][0], r["F"][1]] for r in records[:16]])
    ref = 1.01 * doe.max(axis=0)
    assert its[-1]["hv_ref"] == pytest.approx([ref[0] - 100, ref[1]])
    assert -its[-1]["hv_ref"][0] < (100 - doe[:, 0]).min()  # below the worst DOE accuracy
    E = np.array([[100 + r["F"][0], r["F"][1]] for r in records])
    volume = hypervolume(E[np.all(ref >= E, axis=1)], ref)
    assert its[-1]["hv"] == pytest.approx(volume / ref.prod())
    assert its[-1]["hv_raw"] == pytest.approx(volume)  # accuracy in %: same units
    assert 0 < hvs[0] < hvs[-1] <= 1


def test_msunas_finds_better_architectures_than_its_doe(tmp_path):
    loop, _ = make_loop(tmp_path, n_evals=64, n_obj=1, n_doe=16, n_candidates=8)
    records = loop.run()
    doe = [-r["F"][0] for r in records[:16]]
    later = [-r["F"][0] for r in records[16:]]
    assert np.mean(later) > np.mean(doe) + 2.0  # the surrogate steers towards accurate cells
    assert max(later) >= max(doe)


def test_msunas_is_deterministic_and_resumes(tmp_path):
    a, _ = make_loop(tmp_path / "a", seed=3)
    ra = a.run()
    b, _ = make_loop(tmp_path / "b", seed=3)
    rb = b.run()
    assert [r["arch"] for r in ra] == [r["arch"] for r in rb]
    # kill after 25 evaluations: keep the journal's first 25 lines, drop the iteration files
    journal = tmp_path / "a" / "evaluations.jsonl"
    journal.write_text("".join(journal.read_text().splitlines(keepends=True)[:25]))
    for p in (tmp_path / "a").glob("iter_*.json"):
        p.unlink()
    c, _ = make_loop(tmp_path / "a", seed=3)
    rc = c.run()
    assert [r["arch"] for r in rc] == [r["arch"] for r in ra]
    assert (
        iterations(tmp_path / "a")[-1]["surrogate"] == iterations(tmp_path / "b")[-1]["surrogate"]
    )


def test_msunas_rejects_bad_settings():
    with pytest.raises(ValueError, match="n_doe"):
        MSuNASSearch(surrogate=LinearSurrogate(), n_doe=1)
    with pytest.raises(ValueError, match="n_candidates"):
        MSuNASSearch(surrogate=LinearSurrogate(), n_candidates=0)


# --- through the pipeline ------------------------------------------------------------------


def test_pipeline_runs_msunas_on_the_table_and_resumes(compose_cfg, tmp_path):
    from nasx import pipeline
    from nasx.io import Journal

    overrides = (
        "experiment=msunas_nb201",
        "surrogate=rbf",
        "logger=none",
        "progress=false",
        "search.n_evals=36",
        "search.n_doe=12",
        "search.n_candidates=8",
        "search.surrogate_generations=5",
        "search.subset_generations=10",
    )
    out = pipeline.run(compose_cfg(*overrides), tmp_path / "a")
    assert out["search"]["n_evals"] == 36
    its = iterations(tmp_path / "a" / "search")
    assert [it["n_evals"] for it in its] == [12, 20, 28, 36]
    assert its[0]["surrogate"] is None
    assert all(it["surrogate"]["name"] == "rbf" for it in its[1:])
    assert its[-1]["objectives"] == ["-benchmark", "latency"]
    assert (tmp_path / "a" / "final" / "front.csv").exists()
    # killed after 25 evaluations: the re-run ends with the same archive and surrogate report
    journal = tmp_path / "a" / "search" / "evaluations.jsonl"
    full = Journal(journal).read()
    for p in (tmp_path / "a").rglob("*"):
        if p.is_file() and p.name != "nasx_config.json":
            p.unlink()
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text("".join(json.dumps(r) + "\n" for r in full[:25]))
    pipeline.run(compose_cfg(*overrides), tmp_path / "a")
    again = Journal(journal).read()
    assert [r["arch"] for r in again] == [r["arch"] for r in full]
    assert iterations(tmp_path / "a" / "search")[-1]["surrogate"] == its[-1]["surrogate"]


def test_bounded_cost_is_a_constraint_of_the_search(compose_cfg, tmp_path):
    from nasx import pipeline

    cfg = compose_cfg(
        "space=nb201",
        "metric=benchmark",
        "objective=latency",
        "objective.costs.0.upper=0.015",
        "stages=[search,select]",
        "search.n_evals=60",
        "logger=none",
        "progress=false",
    )
    pipeline.run(cfg, tmp_path)
    last = iterations(tmp_path / "search")[-1]
    rows = last["archive"]
    assert all(len(r["G"]) == 1 for r in rows)
    for r in rows:
        lat = r["objectives"]["latency"]
        assert r["G"][0] == pytest.approx(max(0.0, lat - 0.015))
        assert r["feasible"] == (lat <= 0.015)
    assert any(r["feasible"] for r in rows) and not all(r["feasible"] for r in rows)
    assert last["best"]["feasible"]
    chosen = json.loads((tmp_path / "final" / "selection.json").read_text())["selected"]
    by_arch = {r["arch"]: r for r in rows}
    assert all(by_arch[s["arch"]]["feasible"] for s in chosen if s["arch"] in by_arch)


def test_evolution_prefers_feasible_architectures():
    from nasx.search import EvolutionSearch

    sp = space()
    strat = EvolutionSearch(n_evals=10, population=4, top_k=2, n_mutation=1, n_crossover=1)
    strat.setup(sp, 1, 0, n_constr=1)
    archs = strat.ask()
    F = np.array([[-90.0], [-80.0], [-70.0], [-60.0]])
    G = np.array([[0.5], [0.0], [2.0], [0.0]])  # the best one violates the constraint
    strat.tell(archs, F, G)
    assert [a.genes for _, a in strat._top] == [archs[1].genes, archs[3].genes]


def test_cnas_doe_is_purely_random(tmp_path):
    loop, strategy = make_loop(tmp_path, n_evals=16, doe_extremes=False)
    records = loop.run()
    # the DOE is the first 16 distinct draws of the strategy's generator (CNAS sample(n_doe))
    rng = np.random.default_rng(0)
    sp = space()
    drawn: list[str] = []
    while len(drawn) < 16:
        a = sp.to_str(sp.sample(rng))
        if a not in drawn:
            drawn.append(a)
    assert [r["arch"] for r in records] == drawn
    with_extremes, _ = make_loop(tmp_path / "nsg", n_evals=16)
    first = [r["arch"] for r in with_extremes.run()[:2]]
    assert first != drawn[:2] and set(first) <= {sp.to_str(a) for a in sp.extremes()}


def test_explore_local_proposes_neighbours_of_distinct_parents(tmp_path):
    loop, strategy = make_loop(tmp_path, n_evals=24, n_obj=1, n_candidates=8, explore="local")
    records = loop.run()
    doe = {tuple(r["genes"]): r["F"][0] for r in records[:16]}
    ranked = sorted(doe, key=doe.get)
    new = [np.array(r["genes"]) for r in records[16:]]
    assert len(new) == 8
    best = np.array(ranked[0])
    # half of the candidates are one-gene neighbours of the best, pairwise 2 genes apart
    assert [int((x != best).sum()) for x in new[:4]] == [1, 1, 1, 1]
    assert all(int((a != b).sum()) >= 2 for i, a in enumerate(new[:4]) for b in new[i + 1 : 4])
    # the rest come from parents at least 3 genes from the best (other basins)
    parents = [np.array(g) for g in ranked[1:] if int((np.array(g) != best).sum()) >= 3]
    for x in new[4:]:
        assert any(int((x != p).sum()) == 1 for p in parents)
    # the same seed replays the same proposals
    again, _ = make_loop(tmp_path / "again", n_evals=24, n_obj=1, n_candidates=8, explore="local")
    assert [r["arch"] for r in again.run()] == [r["arch"] for r in records]


def test_explore_must_be_known():
    with pytest.raises(ValueError, match="search.explore"):
        MSuNASSearch(surrogate=LinearSurrogate(), explore="bold")


def test_single_objective_ga_runs_cnas_generations(tmp_path, monkeypatch):
    import nasx.search.msunas as msunas

    seen = []
    real = msunas.minimize

    def spy(problem, algorithm, termination, **kw):
        seen.append((type(algorithm).__name__, termination))
        return real(problem, algorithm, termination, **kw)

    monkeypatch.setattr(msunas, "minimize", spy)
    loop, _ = make_loop(tmp_path / "so", n_evals=22, n_obj=1, surrogate_generations=5)
    loop.run()
    assert seen and all(s == ("GA", ("n_gen", 60)) for s in seen)  # CNAS: 60 generations
    seen.clear()
    loop, _ = make_loop(tmp_path / "mo", n_evals=22, n_obj=2, surrogate_generations=5)
    loop.run()
    assert ("NSGA2", ("n_gen", 5)) in seen  # NSGANetV2: surrogate_generations


def test_explore_local_with_two_objectives_splits_the_batch(tmp_path):
    loop, _ = make_loop(tmp_path, n_evals=24, n_candidates=8, explore="local")
    records = loop.run()
    doe = {tuple(r["genes"]): r["F"] for r in records[:16]}
    ranked = sorted(doe, key=lambda g: doe[g][0])
    new = [np.array(r["genes"]) for r in records[16:]]
    assert len(new) == 8
    best = np.array(ranked[0])
    # half of the batch is the local search on the predicted first objective: 2 one-gene
    # neighbours of the most accurate architecture, then one of each of two other basins
    assert [int((x != best).sum()) for x in new[:2]] == [1, 1]
    parents = [np.array(g) for g in ranked[1:] if int((np.array(g) != best).sum()) >= 3]
    for x in new[2:4]:
        assert any(int((x != p).sum()) == 1 for p in parents)
    # the reference (explore=none) spreads all 8 along latency, not around the best
    ref, _ = make_loop(tmp_path / "none", n_evals=24, n_candidates=8)
    ref_new = [np.array(r["genes"]) for r in ref.run()[16:]]
    assert [int((x != best).sum()) for x in ref_new[:2]] != [1, 1]


class RecordingSurrogate(LinearSurrogate):
    """`LinearSurrogate` that keeps the targets of every fit."""

    def __init__(self) -> None:
        super().__init__()
        self.fitted_y: list[np.ndarray] = []

    def fit(self, X, y):
        self.fitted_y.append(np.sort(np.asarray(y, dtype=float)))
        super().fit(X, y)


def test_local_fit_ranks_on_the_best_evaluations_only(tmp_path):
    # one objective: the iteration's only fit is on the 10 best of the 16 DOE rows
    sur = RecordingSurrogate()
    loop, strategy = make_loop(
        tmp_path / "so",
        n_evals=24,
        n_obj=1,
        n_candidates=8,
        explore="local",
        local_fit=10,
        surrogate=sur,
    )
    records = loop.run()
    doe_y = np.sort([r["F"][0] for r in records[:16]])
    assert len(sur.fitted_y) == 1
    np.testing.assert_allclose(sur.fitted_y[0], doe_y[:10])
    # and it changes what is proposed: the full-archive fit ranks the neighbours differently
    full, _ = make_loop(tmp_path / "full", n_evals=24, n_obj=1, n_candidates=8, explore="local")
    assert [r["arch"] for r in full.run()[16:]] != [r["arch"] for r in records[16:]]


def test_local_fit_with_two_objectives_keeps_nsga_on_the_whole_archive(tmp_path):
    sur = RecordingSurrogate()
    loop, strategy = make_loop(
        tmp_path, n_evals=24, n_candidates=8, explore="local", local_fit=10, surrogate=sur
    )
    records = loop.run()
    doe_y = np.sort([r["F"][0] for r in records[:16]])
    # the main surrogate (NSGA-II's) saw all 16 rows; the ranker is a separate copy on 10
    assert len(sur.fitted_y) == 1 and len(sur.fitted_y[0]) == 16
    ranker = strategy._ranker
    assert ranker is not sur and isinstance(ranker, RecordingSurrogate)
    np.testing.assert_allclose(ranker.fitted_y[-1], doe_y[:10])


def test_local_fit_must_leave_rows_to_fit():
    with pytest.raises(ValueError, match="search.local_fit"):
        MSuNASSearch(surrogate=LinearSurrogate(), explore="local", local_fit=2)
