"""Search strategies against the NB201 table, and the resumable SearchLoop."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from nasx.data import FakeData
from nasx.evaluator import FAILED_VALUE, Evaluator, arch_generator
from nasx.hypervolume import hypervolume
from nasx.metric import Metric, MetricContext, TorchRunner
from nasx.objective import Objective
from nasx.search import EvolutionSearch, NSGASearch, RandomSearch
from nasx.search.base import SearchStrategy
from nasx.search_loop import MAX_STALLED_ITERATIONS, SearchLoop, safe_name
from nasx.search_space import NB201Space
from nasx.search_space._nb201_table import load_table

ACC = "cifar10valid_valid_acc_12ep"
LAT = "latency_ms_pixel3"


def space() -> NB201Space:
    return NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8)


def table_F(sp: NB201Space, arch, n_obj: int) -> list[float]:
    row = load_table()[1][sp.index(arch)]
    return [-row[ACC], row[LAT]][:n_obj]


def median_acc() -> float:
    return float(np.median([r[ACC] for r in load_table()[1]]))


def drive(strategy: SearchStrategy, n_obj: int = 1, run_seed: int = 0, max_iters: int = 500):
    """The pipeline's loop without files: ask, look up the table, tell."""
    sp = space()
    strategy.setup(sp, n_obj, run_seed)
    asks: list[list[tuple[int, ...]]] = []
    archive: dict[tuple[int, ...], list[float]] = {}
    for _ in range(max_iters):
        if len(archive) >= strategy.n_evals:
            break
        archs = strategy.ask()
        if not archs:
            break
        asks.append([a.genes for a in archs])
        F = np.array([table_F(sp, a, n_obj) for a in archs])
        for a, f in zip(archs, F, strict=True):
            archive[a.genes] = list(f)
        strategy.tell(archs, F)
    return asks, archive


def random_search(seed=None):
    return RandomSearch(n_evals=200, batch_size=20, seed=seed)


def evolution(seed=None, **kw):
    args = dict(
        n_evals=400,
        population=40,
        top_k=10,
        n_mutation=15,
        n_crossover=15,
        mutation_prob=0.2,
        generations=10,
        seed=seed,
    )
    args.update(kw)
    return EvolutionSearch(**args)


def nsga(seed=None):
    return NSGASearch(n_evals=200, pop_size=20, seed=seed)


STRATEGIES = {
    "random": (random_search, 1),
    "evolution": (evolution, 1),
    "nsga": (nsga, 2),
}


# --- strategies ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["random", "evolution"])
def test_never_proposes_an_architecture_twice(name):
    make, n_obj = STRATEGIES[name]
    asks, archive = drive(make(), n_obj)
    flat = [g for batch in asks for g in batch]
    assert len(flat) == len(set(flat))
    assert len(flat) >= 200


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_same_seed_same_asks_other_seed_other_asks(name):
    make, n_obj = STRATEGIES[name]
    a, _ = drive(make(), n_obj, run_seed=0)
    b, _ = drive(make(), n_obj, run_seed=0)
    c, _ = drive(make(), n_obj, run_seed=1)
    assert a == b
    assert a != c
    # an explicit strategy seed overrides the run seed
    d, _ = drive(make(seed=5), n_obj, run_seed=0)
    e, _ = drive(make(seed=5), n_obj, run_seed=1)
    assert d == e


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_beats_the_median_within_budget(name):
    make, n_obj = STRATEGIES[name]
    strategy = make()
    asks, archive = drive(strategy, n_obj)
    assert len(archive) >= strategy.n_evals
    best = -min(f[0] for f in archive.values())
    assert best > median_acc()
    sp = space()
    for batch in asks:
        for g in batch:
            assert len(g) == sp.n_var
            assert all(int(sp.lower[i]) <= v <= int(sp.upper[i]) for i, v in enumerate(g))


def test_evolution_improves_over_its_random_start():
    asks, archive = drive(evolution(), 1)
    first = np.mean([archive[g][0] for g in asks[0]])
    last = np.mean([archive[g][0] for g in asks[-1]])
    assert last < first - 1.0  # about one accuracy point better on average
    accs = np.array([r[ACC] for r in load_table()[1]])
    best = -min(f[0] for f in archive.values())
    assert best >= np.quantile(accs, 0.995)


def test_evolution_stops_after_its_generations():
    strategy = evolution(generations=3, n_evals=10_000)
    asks, _ = drive(strategy, 1)
    assert len(asks) == 3
    assert strategy.ask() == []


def test_evolution_ask_is_idempotent_until_told():
    strategy = evolution()
    strategy.setup(space(), 1, 0)
    assert strategy.ask() == strategy.ask()


def test_nsga_improves_the_front():
    asks, archive = drive(nsga(), 2)
    F0 = np.array([archive[g] for g in asks[0]])
    Fall = np.array(list(archive.values()))
    ref = Fall.max(0) + 1.0
    assert hypervolume(Fall, ref) > hypervolume(F0, ref)
    last = np.array([archive[g] for g in asks[-1]])
    assert hypervolume(last, ref) > hypervolume(F0, ref)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomSearch(n_evals=0),
        lambda: RandomSearch(batch_size=0),
        lambda: EvolutionSearch(n_evals=0),
        lambda: EvolutionSearch(population=-1),
        lambda: EvolutionSearch(top_k=0),
        lambda: EvolutionSearch(generations=0),
        lambda: EvolutionSearch(n_mutation=-1),
        lambda: EvolutionSearch(mutation_prob=2),
        lambda: EvolutionSearch(mutation_prob=-0.1),
        lambda: NSGASearch(n_evals=0),
        lambda: NSGASearch(pop_size=1),
        lambda: NSGASearch(n_offsprings=0),
    ],
)
def test_invalid_constructor_values(make):
    with pytest.raises(ValueError, match="search\\."):
        make()


# --- SearchLoop ----------------------------------------------------------------------------


class TableMetric(Metric):
    """The NB201 12-epoch valid accuracy, counting calls; raises for chosen architectures."""

    name = "acc12"
    higher_is_better = True
    needs_supernet = False

    def __init__(self, fail=None) -> None:
        self.calls: list[tuple[int, ...]] = []
        self.fail = fail

    def _compute(self, arch, ctx, generator):
        self.calls.append(arch.genes)
        if self.fail is not None and self.fail(arch):
            raise ValueError(f"boom on {arch.genes}")
        return {"acc12": ctx.space.ground_truth(arch)[ACC], "gen": float(generator.initial_seed())}


class LatencyCost(Objective):
    name = "latency"

    def _compute(self, arch, space):
        return space.ground_truth(arch)[LAT]


def fails_first_edge_none(arch) -> bool:
    return arch.genes[0] == 0


def make_loop(out: Path, strategy: SearchStrategy, metric: Metric, seed: int = 0):
    sp = space()
    ctx = MetricContext(space=sp, supernet=None, data=FakeData(), runner=TorchRunner())
    ev = Evaluator(sp, metric, [LatencyCost()], ctx, seed=seed)
    strategy.setup(sp, ev.n_obj, seed)
    return SearchLoop(out, strategy, ev, progress=False)


def journal_lines(out: Path) -> list[str]:
    return (out / "evaluations.jsonl").read_text().splitlines()


def comparable(records):
    return [{k: v for k, v in r.items() if k not in ("seconds", "traceback")} for r in records]


def test_search_loop_respects_n_evals_and_writes_iterations(tmp_path):
    metric = TableMetric()
    seen = []
    loop = make_loop(tmp_path, RandomSearch(n_evals=23, batch_size=10), metric)
    loop.on_iteration = seen.append
    records = loop.run()
    assert len(records) == 23
    assert len(metric.calls) == 23 == len(set(metric.calls))
    assert len(journal_lines(tmp_path)) == 23
    files = sorted(p.name for p in tmp_path.glob("iter_*.json"))
    assert files == ["iter_0.json", "iter_1.json", "iter_2.json"]
    hvs = []
    for k, n in enumerate((10, 20, 23)):
        it = json.loads((tmp_path / f"iter_{k}.json").read_text())
        assert {"archive", "hv", "candidates", "objectives"} <= set(it)
        assert it["objectives"] == ["-acc12", "latency"]
        assert it["iteration"] == k and it["n_evals"] == n
        assert len(it["archive"]) == n
        assert len(it["candidates"]) == (3 if k == 2 else 10)
        assert it["candidates"] == [r["arch"] for r in records[n - len(it["candidates"]) : n]]
        assert it["hv"] > 0
        hvs.append(it["hv"])
        best = min(it["archive"], key=lambda r: r["F"][0])
        assert it["best"]["arch"] == best["arch"]
    assert hvs == sorted(hvs)  # the reference point is fixed, so HV never shrinks
    assert [s["iteration"] for s in seen] == [0, 1, 2]
    sp = space()
    for r in records:
        arch = sp.parse(r["arch"])
        assert r["genes"] == list(arch.genes)
        assert r["F"] == pytest.approx(table_F(sp, arch, 2))
        assert r["metric"]["acc12"] == pytest.approx(-r["F"][0])
        assert r["objectives"] == {"latency": pytest.approx(r["F"][1])}
        assert r["ground_truth"][ACC] == pytest.approx(-r["F"][0])
        assert not any(k.startswith("latency") for k in r["ground_truth"])
    assert [r["order"] for r in records] == list(range(23))


def test_search_loop_with_evolution_respects_n_evals(tmp_path):
    metric = TableMetric()
    strategy = EvolutionSearch(n_evals=45, population=20, top_k=5, n_mutation=8, n_crossover=8)
    records = make_loop(tmp_path, strategy, metric).run()
    assert len(records) == 45 == len(metric.calls)
    assert len(journal_lines(tmp_path)) == 45


def test_failed_evaluations_are_recorded_and_the_search_continues(tmp_path):
    metric = TableMetric(fail=fails_first_edge_none)
    records = make_loop(tmp_path, RandomSearch(n_evals=60, batch_size=15), metric).run()
    assert len(records) == 60
    failed = [r for r in records if r["failed"]]
    ok = [r for r in records if not r["failed"]]
    assert failed and ok
    assert all(r["arch"].startswith("|none~0|") for r in failed)
    assert not any(r["arch"].startswith("|none~0|") for r in ok)
    files = sorted((tmp_path / "failed").glob("*.json"))
    assert len(files) == len(failed)
    for r in failed:
        path = tmp_path / "failed" / f"{safe_name(r['arch'])}.json"
        saved = json.loads(path.read_text())
        assert saved["arch"] == r["arch"]
        assert saved["error"].startswith("ValueError: boom on")
        assert "Traceback" in saved["traceback"]
        assert saved["F"] == [FAILED_VALUE, FAILED_VALUE]
    last = json.loads((tmp_path / "iter_3.json").read_text())
    assert len(last["archive"]) == len(ok)
    assert sorted(last["failed"]) == sorted(r["arch"] for r in failed)
    assert last["n_failed"] == len(failed)


def test_safe_names_are_distinct_for_distinct_archs():
    sp = space()
    rng = np.random.default_rng(0)
    archs = {sp.to_str(sp.sample(rng)) for _ in range(500)}
    names = {safe_name(a) for a in archs}
    assert len(names) == len(archs)
    assert all("|" not in n and "~" not in n for n in names)


def test_non_finite_scores_are_failures():
    class NaNMetric(Metric):
        name = "m"

        def _compute(self, arch, ctx, generator):
            return {"m": math.nan}

    sp = space()
    ctx = MetricContext(space=sp, supernet=None, data=FakeData(), runner=TorchRunner())
    rec = Evaluator(sp, NaNMetric(), [LatencyCost()], ctx, seed=0)(
        sp.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|")
    )
    assert rec["failed"] is True
    assert rec["F"] == [FAILED_VALUE, FAILED_VALUE]
    assert "nan" in rec["error"]


def test_arch_generator_depends_on_seed_and_arch_only():
    sp = space()
    a, b = (
        sp.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
        sp.sample(np.random.default_rng(1)),
    )
    assert arch_generator(0, a).initial_seed() == arch_generator(0, a).initial_seed()
    assert arch_generator(0, a).initial_seed() != arch_generator(1, a).initial_seed()
    assert arch_generator(0, a).initial_seed() != arch_generator(0, b).initial_seed()


def _kill(out: Path, keep: int) -> list[str]:
    """Simulate a kill: keep ``keep`` journal lines plus a torn part of the next one."""
    lines = journal_lines(out)
    torn = lines[keep][: len(lines[keep]) // 2]
    (out / "evaluations.jsonl").write_text("\n".join(lines[:keep]) + "\n" + torn)
    for p in out.glob("iter_*.json"):
        p.unlink()
    (out / "done.json").unlink(missing_ok=True)
    (out / "done").unlink(missing_ok=True)
    return lines


@pytest.mark.parametrize(
    ("make", "n"),
    [
        (lambda: RandomSearch(n_evals=40, batch_size=7), 40),
        (
            lambda: EvolutionSearch(
                n_evals=50, population=16, top_k=5, n_mutation=6, n_crossover=6
            ),
            50,
        ),
        (lambda: NSGASearch(n_evals=50, pop_size=10), 50),
    ],
    ids=["random", "evolution", "nsga"],
)
def test_resume_after_kill_gives_the_same_archive(tmp_path, make, n):
    full, killed = tmp_path / "full", tmp_path / "killed"
    reference = make_loop(full, make(), TableMetric(fail=fails_first_edge_none)).run()
    assert len(reference) == n

    first = make_loop(killed, make(), TableMetric(fail=fails_first_edge_none)).run()
    assert comparable(first) == comparable(reference)
    keep = 17
    lines = _kill(killed, keep)
    kept = {json.loads(line)["arch"] for line in lines[:keep]}

    metric = TableMetric(fail=fails_first_edge_none)
    resumed = make_loop(killed, make(), metric).run()
    assert comparable(resumed) == comparable(reference)
    # only the missing architectures were evaluated, each once
    sp = space()
    evaluated = [sp.to_str(sp.decode(g)) for g in metric.calls]
    assert len(evaluated) == n - keep == len(set(evaluated))
    assert not set(evaluated) & kept
    # the journal is whole again: no torn line, one record per architecture
    records = [json.loads(line) for line in journal_lines(killed)]
    assert len(records) == n
    assert {r["arch"] for r in records} == {r["arch"] for r in reference}
    # the iteration files are rewritten identically
    for p in full.glob("iter_*.json"):
        a = json.loads(p.read_text())
        b = json.loads((killed / p.name).read_text())
        assert comparable(a["archive"]) == comparable(b["archive"])
        assert a["hv"] == b["hv"] and a["candidates"] == b["candidates"]
    assert sorted(p.name for p in full.glob("iter_*.json")) == sorted(
        p.name for p in killed.glob("iter_*.json")
    )


def test_resume_of_a_finished_search_evaluates_nothing(tmp_path):
    make_loop(tmp_path, RandomSearch(n_evals=20, batch_size=10), TableMetric()).run()
    metric = TableMetric()
    records = make_loop(tmp_path, RandomSearch(n_evals=20, batch_size=10), metric).run()
    assert len(records) == 20 and metric.calls == []


def test_search_loop_stops_when_the_strategy_stalls(tmp_path):
    class Stuck(SearchStrategy):
        def _ask(self):
            return [self.space.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")]

        def _tell(self, archs, F):
            pass

    metric = TableMetric()
    records = make_loop(tmp_path, Stuck(n_evals=5), metric).run()
    assert len(records) == 1 and len(metric.calls) == 1
    assert len(list(tmp_path.glob("iter_*.json"))) == MAX_STALLED_ITERATIONS + 1
