"""End-to-end runs on real data (marked slow: `make test-all`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasx import pipeline
from tests.conftest import ROOT

CIFAR = ROOT.parent / "shared" / "data" / "cifar10"


@pytest.mark.slow
@pytest.mark.skipif(not any(CIFAR.glob("*.npz")), reason="shared CIFAR-10 npz not present")
def test_main_job_on_cifar10_subset(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(
        "dataset=cifar10",
        f"dataset.root={CIFAR}",
        "dataset.limit_train=2000",
        "dataset.limit_test=500",
        "logger=none",
        "progress=false",
        "supernet.epochs=3",
        "search.n_evals=16",
        "search.pop_size=8",
        "metric.val_images=256",
        "metric.recal_images=256",
    )
    pipeline.run(cfg, tmp_path)
    done = json.loads((tmp_path / "search" / "done.json").read_text())
    assert done["n_evals"] == 16 and done["n_failed"] == 0
    best = done["best"]
    assert 0 < best["metric"]["flatness"] < 1
    assert 40.0 < best["ground_truth"]["cifar10_test_acc_200ep"] <= 94.38
    assert (tmp_path / "final" / "front_00" / "weights.pt").is_file()


@pytest.mark.slow
def test_main_job_on_digits_through_the_cli(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    res = run_cli(
        "logger=none",
        "progress=false",
        "search.n_evals=30",
        f"hydra.run.dir={tmp_path}",
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    done = json.loads((tmp_path / "search" / "done.json").read_text())
    assert done["n_evals"] == 30
    # a 40-epoch supernet on digits learns: the best architecture's loss is far below chance
    assert min(done["best"]["metric"][k] for k in done["best"]["metric"] if "loss" in k) < 1.5


@pytest.mark.slow
@pytest.mark.skipif(not any(CIFAR.glob("*.npz")), reason="shared CIFAR-10 npz not present")
def test_retrain_a_found_nb201_cell_on_cifar10_with_corruptions(compose_cfg, tmp_path) -> None:
    """Search on real CIFAR-10, retrain the chosen cell a few epochs, test clean and CIFAR-C."""
    cfg = compose_cfg(
        "space=nb201_cpu",
        "space.image_size=32",
        "dataset=cifar10",
        f"dataset.root={CIFAR}",
        "dataset.limit_train=2000",
        "dataset.limit_test=500",
        "logger=none",
        "progress=false",
        "stages=[search,select,retrain]",
        "metric=synflow",
        "objective=none",
        "search=random",
        "search.n_evals=8",
        "select.n_tradeoffs=0",
        "retrain.epochs=3",
        "retrain.corruptions=[gaussian_noise,fog]",
    )
    pipeline.run(cfg, tmp_path)
    stats = [json.loads(p.read_text()) for p in (tmp_path / "final").glob("*/stats.json")]
    assert stats
    for s in stats:
        r = s["retrain"]
        assert 10.0 < r["test_top1"] <= 100.0 and r["epochs"] == 3
        ood = r["corruptions"]
        assert set(ood["mean_errors"]) == {"gaussian_noise", "fog"}
        assert 0.0 <= ood["mce"] <= 100.0
