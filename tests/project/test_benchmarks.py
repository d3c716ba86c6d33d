"""The benchmark scripts run and compare like with like (timings are not asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

# benchmark scripts import their shared helpers (benchmarks/_results.py) as run from there
sys.path.insert(0, str(ROOT / "benchmarks"))


def load_benchmark(name: str) -> Any:
    """``benchmarks/<name>.py`` as a module, registered in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow  # trains on both sides: in make test-all, to keep make test < 15 min
def test_supernet_throughput_quick(tmp_path: Path) -> None:
    mod = load_benchmark("supernet_throughput")
    out = tmp_path / "RESULTS.md"
    out.write_text("# results\n\nkept\n")
    results = mod.main(["--quick", "--write-results", "--results", str(out)])
    # same batches, paths and updates on both sides: identical final weights
    assert results and all(r.max_abs_diff < 1e-6 for r in results)
    text = out.read_text()
    assert "kept" in text and text.count("supernet_throughput:start") == 1
    mod.main(["--quick", "--write-results", "--results", str(out)])
    assert out.read_text().count("supernet_throughput:start") == 1


@pytest.mark.slow  # trains on both sides: in make test-all, to keep make test < 15 min
def test_retrain_throughput_quick(tmp_path: Path) -> None:
    mod = load_benchmark("retrain_throughput")
    out = tmp_path / "RESULTS.md"
    out.write_text("# results\n\nkept\n")
    results = mod.main(["--quick", "--write-results", "--results", str(out)])
    # same weights, batches, augmentation, drop path, aux loss, EMA: identical final weights
    assert [r.steps for r in results] == [2, 2]
    assert all(r.max_abs_diff < 1e-6 for r in results)
    assert any(k.startswith("ema.") for k in results[0].plain[0].state)  # the EMA is compared
    text = out.read_text()
    assert "kept" in text and text.count("retrain_throughput:start") == 1


@pytest.mark.slow  # trains on both sides: in make test-all, to keep make test < 15 min
def test_lut_fidelity_quick(tmp_path: Path) -> None:
    mod = load_benchmark("lut_fidelity")
    out = tmp_path / "RESULTS.md"
    results = mod.main(["--quick", "--write-results", "--results", str(out)])
    assert [r.space.split()[0] for r in results] == ["nb201", "darts"]
    for r in results:
        # random archs plus the extremes, every one priced by the LUT and timed whole
        assert r.n_archs > 4 and r.n_keys > 5 and -1.0 <= r.tau <= 1.0 and r.ratio > 0
    assert out.read_text().count("lut_fidelity:start") == 1


def test_ofa_supernet_quick(tmp_path: Path) -> None:
    mod = load_benchmark("ofa_supernet")
    out = tmp_path / "RESULTS.md"
    res = mod.main(["--quick", "--write-results", "--results", str(out)])
    # the same subnets, resolutions and batches on both sides: identical final weights
    assert res["max_abs_diff"] < 1e-6 and res["steps"] >= 1
    assert out.read_text().count("ofa_supernet:start") == 1


def test_corruption_cost_quick(tmp_path: Path) -> None:
    mod = load_benchmark("corruption_cost")
    out = tmp_path / "RESULTS.md"
    res = mod.main(["--quick", "--write-results", "--results", str(out)])
    assert len(res) == 2 and all(v > 0 for v in res.values())
    assert out.read_text().count("corruption_cost:start") == 1


def test_early_exit_latency_quick(tmp_path: Path) -> None:
    mod = load_benchmark("early_exit_latency")
    out = tmp_path / "RESULTS.md"
    out.write_text("# results\n\nkept\n")
    results = mod.main(["--quick", "--write-results", "--results", str(out)])
    assert [r.width for r in results] == [1.0, 0.35]
    for r in results:
        # one ratio per exit, about half the images out by the second exit
        assert abs(sum(r.ratios) - 1) < 1e-9 and len(r.ratios) == 5
        assert 0.3 <= r.ratios[0] + r.ratios[1] <= 0.7
        assert r.executed_macs >= r.cnas_avg_macs > 0 and r.ratio > 0
    text = out.read_text()
    assert "kept" in text and text.count("early_exit_latency:start") == 1


@pytest.mark.slow  # ~75 s on 2 shared cores: Ray and three worker pools start
def test_ray_scaling_quick(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    mod = load_benchmark("ray_scaling")
    out = tmp_path / "RESULTS.md"
    out.write_text("# results\n\nkept\n")
    # like with like: every side's records are checked equal to the sequential ones inside
    res = mod.main(["--quick", "--write-results", "--results", str(out)])
    assert set(res["scaling"].times) == {"1 worker", "2 workers"} and res["ratio"] > 0
    assert set(res["overhead"].times) == {"sequential", "1 worker", "2 workers"}
    assert all(len(v) == 2 for v in res["scaling"].times.values())
    text = out.read_text()
    assert "kept" in text and text.count("ray_scaling:start") == 1
    assert "| scaling: tiny |" in text and "| concurrency check: wait 20 ms |" in text
    assert res["wait_ratio"] > 0


def test_nag_generator_quick(tmp_path: Path) -> None:
    mod = load_benchmark("nag_generator")
    out = tmp_path / "RESULTS.md"
    out.write_text("# results\n\nkept\n")
    res = mod.main(["--quick", "--write-results", "--results", str(out)])
    cond = res["conditioning"]
    assert [r["condition"] for r in cond] == ["low_acc", "mid_acc", "high_acc"]
    for r in cond:
        assert 0 <= r["valid"] <= 1 and 0 <= r["novel"] <= 1 and r["unique"] >= 0
        assert 40 < r["random_mean"] < 95 and 40 < r["train_mean"] < 95  # test accuracies (%)
    # like with like: the same budget, the gan rows' evaluations all generated or topped up
    rows = {r["strategy"]: r for r in res["search"]}
    assert list(rows)[:3] == ["random", "evolution", "gan"] and len(rows) == 4
    assert all(set(r) >= {10, 20, "s_per_run"} for r in rows.values())
    gan, prior = rows["gan"], rows[list(rows)[3]]
    assert gan["generated"] + gan["random_fill"] == 10  # 10 of 20 in the dataset phase
    assert prior["generated"] + prior["random_fill"] == 20  # the prior is not counted
    text = out.read_text()
    assert "kept" in text and text.count("nag_generator:start") == 1
    mod.main(["--quick", "--write-results", "--results", str(out)])
    assert out.read_text().count("nag_generator:start") == 1
