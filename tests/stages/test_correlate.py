"""The benchmark metric and the correlate stage: scores against the NB201 table, resume, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from nasx import pipeline
from nasx.errors import NasxError
from nasx.metric import BenchmarkMetric, MetricContext
from nasx.search_space import NB201Space
from nasx.search_space._nb201_table import load_table

SMOKE = ("experiment=smoke",)
BENCH = (*SMOKE, "stages=[correlate]", "metric=benchmark")


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "correlate" / "summary.json").read_text())


def _tau(run_dir: Path, column: str) -> float:
    return _summary(run_dir)["columns"][column]["kendall_tau"]


def test_benchmark_metric_returns_the_table_value() -> None:
    space = NB201Space()
    index, rows = load_table()
    arch = space.parse(next(a for a, i in index.items() if i == 6111))
    ctx = MetricContext(space=space, supernet=None, data=None, runner=None)  # type: ignore[arg-type]
    metric = BenchmarkMetric(column="cifar10_test_acc_200ep")
    assert not metric.needs_supernet
    out = metric(arch, ctx, torch.Generator())
    assert out == {"benchmark": rows[6111]["cifar10_test_acc_200ep"]}
    assert out["benchmark"] == pytest.approx(94.37, abs=0.005)


def test_benchmark_metric_names_the_columns_of_the_table(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(*BENCH, "metric.column=cifar11_acc")
    with pytest.raises(NasxError, match="cifar11_acc") as err:
        pipeline.run(cfg, tmp_path)
    assert "cifar10valid_valid_acc_12ep" in str(err.value)
    assert not (tmp_path / "correlate").exists()


def test_search_and_select_on_the_table_need_no_supernet(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(*SMOKE, "stages=[search,select]", "metric=benchmark")
    out = pipeline.run(cfg, tmp_path)
    assert out["search"]["n_evals"] == 8 and out["search"]["n_failed"] == 0
    assert not (tmp_path / "supernet").exists()
    final = tmp_path / "final"
    assert (final / "selection.json").exists()
    assert not list(final.rglob("weights.pt"))


def test_table_column_as_metric_correlates_perfectly(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(*BENCH, "metric.column=cifar10_test_acc_200ep", "correlate.archs=sample:50")
    out = pipeline.run(cfg, tmp_path)
    s = _summary(tmp_path)
    assert out["correlate"] == s
    assert s["n"] == 50 and s["metric"] == "benchmark" and s["higher_is_better"] is True
    assert s["columns"]["cifar10_test_acc_200ep"]["kendall_tau"] == 1.0
    assert s["columns"]["cifar10_test_acc_200ep"]["spearman_rho"] == pytest.approx(1.0)
    assert s["columns"]["cifar10valid_valid_acc_12ep"]["kendall_tau"] > 0.3
    for key in ("kendall_p", "spearman_p", "kendall_tau_rlnas"):
        assert key in s["columns"]["cifar10_test_acc_200ep"]
    rows = list(csv.DictReader((tmp_path / "correlate" / "scores.csv").open()))
    assert len(rows) == 50 and len({r["arch"] for r in rows}) == 50
    assert all(float(r["score"]) == float(r["cifar10_test_acc_200ep"]) for r in rows)
    assert "latency_ms_pixel3" in rows[0]
    assert (tmp_path / "plots" / "correlation.png").stat().st_size > 0
    assert (tmp_path / "correlate" / "done.json").exists()


@pytest.mark.parametrize(("higher", "expected"), [("true", 1.0), ("false", -1.0)])
def test_lower_is_better_flips_the_orientation(
    compose_cfg, tmp_path: Path, higher: str, expected: float
) -> None:
    cfg = compose_cfg(
        *BENCH,
        "metric.column=latency_ms_pixel3",
        f"metric.higher_is_better={higher}",
        "correlate.archs=sample:40",
    )
    pipeline.run(cfg, tmp_path)
    s = _summary(tmp_path)
    assert s["higher_is_better"] is (higher == "true")
    assert s["columns"]["latency_ms_pixel3"]["kendall_tau"] == pytest.approx(expected)


def test_all_scores_every_cell_and_matches_scipy(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(*BENCH, "correlate.archs=all")
    pipeline.run(cfg, tmp_path)
    s = _summary(tmp_path)
    assert s["n"] == s["n_archs"] == 15625
    rows = list(csv.DictReader((tmp_path / "correlate" / "scores.csv").open()))
    assert len(rows) == 15625
    score = np.array([float(r["score"]) for r in rows])
    for column in ("cifar10valid_valid_acc_12ep", "cifar10_test_acc_200ep"):
        truth = np.array([float(r[column]) for r in rows])
        direct = stats.kendalltau(score, truth).statistic
        assert s["columns"][column]["kendall_tau"] == pytest.approx(direct, abs=1e-12)
    assert s["columns"]["cifar10valid_valid_acc_12ep"]["kendall_tau"] == pytest.approx(1.0)


def test_archs_from_a_file(compose_cfg, tmp_path: Path) -> None:
    space = NB201Space()
    archs = [space.to_str(space.sample(np.random.default_rng(k))) for k in range(5)]
    listing = tmp_path / "archs.txt"
    listing.write_text("# picked by hand\n" + "\n".join(archs) + "\n\n")
    cfg = compose_cfg(*BENCH, f"correlate.archs={listing}")
    pipeline.run(cfg, tmp_path / "run")
    rows = list(csv.DictReader((tmp_path / "run" / "correlate" / "scores.csv").open()))
    assert [r["arch"] for r in rows] == list(dict.fromkeys(archs))


def test_bad_line_in_the_arch_file_names_the_line(compose_cfg, tmp_path: Path) -> None:
    listing = tmp_path / "archs.txt"
    good = NB201Space().to_str(NB201Space().sample(np.random.default_rng(0)))
    listing.write_text(f"{good}\n\n|conv~0|+|oops|\n")
    cfg = compose_cfg(*BENCH, f"correlate.archs={listing}")
    with pytest.raises(NasxError, match="line 3") as err:
        pipeline.run(cfg, tmp_path / "run")
    assert "|op~0|" in str(err.value)  # the expected form


@pytest.mark.parametrize("value", ["sample:0", "sample:x", "foo"])
def test_bad_archs_value_names_the_forms(compose_cfg, tmp_path: Path, value: str) -> None:
    cfg = compose_cfg(*BENCH, f"correlate.archs={value}")
    with pytest.raises(NasxError, match="correlate.archs") as err:
        pipeline.run(cfg, tmp_path)
    for form in ("sample:N", "all", "one architecture per line"):
        assert form in str(err.value)


def test_sample_larger_than_the_space_is_refused(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(*BENCH, "correlate.archs=sample:20000")
    with pytest.raises(NasxError, match="correlate.archs=all"):
        pipeline.run(cfg, tmp_path)


def test_supernet_then_correlate_with_the_angle(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(
        *SMOKE, "stages=[supernet,correlate]", "metric=angle", "correlate.archs=sample:12"
    )
    pipeline.run(cfg, tmp_path)
    for rel in ("correlate/scores.csv", "correlate/summary.json", "plots/correlation.png"):
        assert (tmp_path / rel).stat().st_size > 0, rel
    s = _summary(tmp_path)
    assert s["metric"] == "angle" and s["n_archs"] == 12
    assert "cifar10_test_acc_200ep" in s["columns"]
    rows = list(csv.DictReader((tmp_path / "correlate" / "scores.csv").open()))
    assert len(rows) == 12 and all(r["score"] for r in rows if r["failed"] == "0")
    assert not (tmp_path / "search").exists()


def test_killed_correlate_resumes_with_only_the_missing_archs(
    compose_cfg, tmp_path: Path, monkeypatch
) -> None:
    cfg = compose_cfg(*BENCH, "correlate.archs=sample:30")
    pipeline.run(cfg, tmp_path)
    cdir = tmp_path / "correlate"
    first = _summary(tmp_path)
    (cdir / "summary.json").unlink()
    (cdir / "done.json").unlink()
    lines = (cdir / "scores.jsonl").read_text().splitlines(keepends=True)
    assert len(lines) == 30
    (cdir / "scores.jsonl").write_text("".join(lines[:10]) + lines[10][:15])  # torn tail
    calls: list[str] = []
    original = BenchmarkMetric._compute

    def counting(self, arch, ctx, generator):  # type: ignore[no-untyped-def]
        calls.append(ctx.space.to_str(arch))
        return original(self, arch, ctx, generator)

    monkeypatch.setattr(BenchmarkMetric, "_compute", counting)
    pipeline.run(cfg, tmp_path)
    assert len(calls) == 20
    done = [json.loads(x)["arch"] for x in lines[:10]]
    assert not set(calls) & set(done)
    assert _summary(tmp_path) == first
    assert len((cdir / "scores.jsonl").read_text().splitlines()) == 30
    calls.clear()
    pipeline.run(cfg, tmp_path)  # finished: skipped
    assert calls == []


def test_rlnas_tuples_in_the_arch_file(compose_cfg, tmp_path: Path) -> None:
    space = NB201Space()
    archs = [space.sample(np.random.default_rng(k)) for k in range(3)]
    listing = tmp_path / "archs.txt"
    listing.write_text("\n".join(str(tuple(a.genes)) for a in archs) + "\n")
    cfg = compose_cfg(*BENCH, f"correlate.archs={listing}")
    pipeline.run(cfg, tmp_path / "run")
    rows = list(csv.DictReader((tmp_path / "run" / "correlate" / "scores.csv").open()))
    assert [r["arch"] for r in rows] == [space.to_str(a) for a in archs]
