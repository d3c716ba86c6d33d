"""The report stage: a tiny table-only sweep (no training) summarised into CSV and figures."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from nasx.errors import NasxError
from nasx.pipeline import build_parts
from tests.conftest import run_cli

#: two strategies x two seeds on NAS-Bench-201's tables: no supernet, no data read
SWEEP = [
    "-m",
    "stages=[search,select,correlate]",
    "space=nb201",
    "metric=benchmark",
    "objective=latency",
    "dataset=fake",
    "logger=none",
    "search=random,nsga",
    "search.n_evals=30",
    "seed=0,1",
    "correlate.archs=sample:12",
    "progress=false",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    res = run_cli(*SWEEP, f"hydra.sweep.dir={root}", timeout=400)
    assert res.returncode == 0, res.stderr[-2000:]
    return root


@pytest.fixture(scope="module")
def report(sweep: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report_run")
    res = run_cli("stages=[report]", f"report.dir={sweep}", "logger=none", f"hydra.run.dir={out}")
    assert res.returncode == 0, res.stderr[-2000:]
    return sweep / "report"


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_summary_has_one_row_per_job(report: Path, sweep: Path) -> None:
    rows = _rows(report / "summary.csv")
    assert len(rows) == 4
    assert {r["search"] for r in rows} == {"random", "nsga"}
    assert sorted(r["seed"] for r in rows) == ["0", "0", "1", "1"]
    assert {r["group"] for r in rows} == {"search=random", "search=nsga"}
    for r in rows:
        assert r["method"] == f"benchmark/{r['search']}/nb201"
        assert r["metric"] == "benchmark" and r["space"] == "nb201"
        assert int(r["n_evals"]) == 30
        assert float(r["best_metric"]) > 0 and float(r["best_truth"]) > 0
        assert r["truth_column"] == "cifar10_test_acc_200ep"
        assert 0 < float(r["hv"]) <= 1 and int(r["iterations"]) >= 2
        assert -1 <= float(r["kendall_tau"]) <= 1
        assert (
            "seed=" in r["overrides"] and (sweep / r["job"] / "final" / "selection.json").exists()
        )


def test_methods_have_confidence_intervals(report: Path) -> None:
    rows = {r["group"]: r for r in _rows(report / "methods.csv")}
    assert set(rows) == {"search=random", "search=nsga"}
    for r in rows.values():
        assert r["n_jobs"] == "2"
        low, mean, high = (float(r[k]) for k in ("best_ci95_low", "best_mean", "best_ci95_high"))
        assert low <= mean <= high


def test_figures_are_written(report: Path) -> None:
    for name in ("metric_vs_truth.png", "hypervolume.png", "best_found.png"):
        assert (report / name).read_bytes()[:4] == b"\x89PNG", name


def test_selected_architectures_have_diagrams(sweep: Path) -> None:
    cells = list(sweep.glob("*/final/*/cell.png"))
    assert cells and len(cells) == len(list(sweep.glob("*/final/*/arch.txt")))


def test_report_needs_a_sweep_before_any_work(compose_cfg, tmp_path: Path) -> None:
    with pytest.raises(NasxError, match="report.dir=multirun/<date>/<time>"):
        build_parts(compose_cfg("stages=[report]"))
    with pytest.raises(NasxError, match="holds no sweep jobs"):
        build_parts(compose_cfg("stages=[report]", f"report.dir={tmp_path}"))
    with pytest.raises(NasxError, match="does not exist"):
        build_parts(compose_cfg("stages=[report]", f"report.dir={tmp_path / 'missing'}"))


def test_cli_error_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    run_dir = f"hydra.run.dir={tmp_path / 'r'}"
    res = run_cli("stages=[report]", f"report.dir={tmp_path / 'empty'}", "logger=none", run_dir)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("nasx: error: report.dir=")


def test_an_unfinished_job_is_a_row_with_empty_results(sweep: Path, tmp_path: Path) -> None:
    import shutil

    from nasx.report import group_stats, load_sweep, summary_row, truth_column
    from nasx.report_plots import plot_best_found, plot_hypervolume_curves

    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("report"))
    crashed = copy / "crashed" / ".hydra"
    crashed.mkdir(parents=True)
    (crashed / "overrides.yaml").write_text("- search=random\n- seed=7\n")
    jobs = load_sweep(copy)
    assert len(jobs) == 5
    truth = truth_column(jobs, None)
    row = next(summary_row(j, truth) for j in jobs if j.dir.name == "crashed")
    assert row["n_evals"] == 0 and row["hv"] is None and row["best_arch"] == ""
    stats = group_stats(jobs, truth)
    assert plot_hypervolume_curves(jobs, tmp_path / "hv.png") is not None
    assert plot_best_found(jobs, stats, truth, tmp_path / "best.png") is not None


def test_confidence_interval_is_the_t_interval(tmp_path: Path) -> None:
    from scipy import stats as st

    from nasx.report import Job, group_stats

    values = [90.0, 92.0, 95.0]
    jobs = [
        Job(tmp_path / f"j{k}", [f"seed={k}"], {}, k, metric="acc", best={"metric": {"acc": v}})
        for k, v in enumerate(values)
    ]
    for job in jobs:
        job.group = "m"
    (row,) = group_stats(jobs, None)
    low, high = st.t.interval(0.95, 2, loc=sum(values) / 3, scale=st.sem(values))
    assert row["best_mean"] == pytest.approx(sum(values) / 3)
    assert (row["best_ci95_low"], row["best_ci95_high"]) == pytest.approx((low, high))
