"""End-to-end behaviour of a run: outputs, resume, determinism, kill-and-resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nasx import pipeline
from nasx.search_space import NB201Space
from nasx.search_space._nb201_net import NB201Network
from nasx.supernet import load_supernet
from tests.conftest import ROOT, run_cli


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "search" / "evaluations.jsonl").read_text().splitlines()
    out = []
    for line in lines:
        rec = json.loads(line)
        rec.pop("seconds", None)
        out.append(rec)
    return out


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """One complete smoke run shared by the read-only tests below."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=smoke", "search.n_evals=12"])
    GlobalHydra.instance().clear()
    run_dir = tmp_path_factory.mktemp("smoke")
    pipeline.run(cfg, run_dir)
    return run_dir


def test_run_leaves_the_documented_tree(smoke_run: Path) -> None:
    for rel in [
        "supernet/init.ckpt",
        "supernet/final.ckpt",
        "supernet/last.ckpt",
        "search/evaluations.jsonl",
        "search/iter_0.json",
        "search/done.json",
        "plots/pareto.png",
        "plots/hv.png",
        "final/front.csv",
        "final/selection.json",
        "final/front_00/arch.txt",
        "final/front_00/stats.json",
        "final/front_00/config.json",
        "final/front_00/weights.pt",
    ]:
        assert (smoke_run / rel).is_file(), rel
    assert (smoke_run / "search" / "failed").exists() is False or not any(
        (smoke_run / "search" / "failed").iterdir()
    )
    iters = sorted(
        (smoke_run / "search").glob("iter_*.json"), key=lambda p: int(p.stem.split("_")[1])
    )
    last = json.loads(iters[-1].read_text())
    assert {"archive", "hv", "candidates", "objectives", "surrogate"} <= set(last)
    assert len(last["archive"]) == 12
    assert last["objectives"] == ["-flatness", "flops"]
    rec = last["archive"][0]
    assert {"arch", "genes", "metric", "objectives", "F", "ground_truth"} <= set(rec)
    assert rec["F"][0] == -rec["metric"]["flatness"]
    # evaluation order is preserved and every architecture is distinct
    arches = [r["arch"] for r in last["archive"]]
    assert len(set(arches)) == len(arches)
    hvs = [json.loads(p.read_text())["hv"] for p in iters]
    assert hvs == sorted(hvs), "hypervolume of a growing archive never decreases"
    assert 0 <= hvs[-1] <= 1 and last["hv_raw"] >= 0  # a fraction of the box, and the volume
    selection = json.loads((smoke_run / "final" / "selection.json").read_text())
    assert (selection["hv"], selection["hv_raw"]) == (last["hv"], last["hv_raw"])


def test_initial_and_final_supernet_differ(smoke_run: Path) -> None:
    from nasx.io import load_state_dict

    a = load_state_dict(smoke_run / "supernet" / "init.ckpt")
    b = load_state_dict(smoke_run / "supernet" / "final.ckpt")
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_selected_weights_reproduce_the_supernet_path(smoke_run: Path) -> None:
    cfg = json.loads((smoke_run / "final" / "front_00" / "config.json").read_text())
    space = NB201Space(
        num_classes=cfg["num_classes"],
        channels=cfg["channels"],
        cells_per_stage=cfg["cells_per_stage"],
        image_size=cfg["image_size"],
    )
    arch = space.parse((smoke_run / "final" / "front_00" / "arch.txt").read_text().strip())
    supernet = load_supernet(space, smoke_run / "supernet" / "final.ckpt")
    net = NB201Network(
        arch.genes, space.channels, space.cells_per_stage, 3, space.num_classes, affine=False
    )
    state = torch.load(smoke_run / "final" / "front_00" / "weights.pt", weights_only=True)
    net.load_state_dict(state["state_dict"])
    x = torch.randn(5, *space.input_shape)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), supernet(x, supernet.path_of(arch)), atol=1e-5)
    stats = json.loads((smoke_run / "final" / "front_00" / "stats.json").read_text())
    assert "best_first_objective" in stats["reasons"]


def test_rerun_skips_finished_stages(smoke_run: Path, compose_cfg) -> None:
    stamp = {
        p: p.stat().st_mtime_ns
        for p in [
            smoke_run / "supernet" / "final.ckpt",
            smoke_run / "search" / "done.json",
            smoke_run / "final" / "selection.json",
        ]
    }
    before = _records(smoke_run)
    pipeline.run(compose_cfg("experiment=smoke", "search.n_evals=12"), smoke_run)
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    assert _records(smoke_run) == before


def test_same_seed_same_archive_and_other_seed_differs(
    compose_cfg, tmp_path: Path, smoke_run: Path
) -> None:
    pipeline.run(compose_cfg("experiment=smoke", "search.n_evals=12"), tmp_path / "a")
    assert _records(tmp_path / "a") == _records(smoke_run)
    pipeline.run(compose_cfg("experiment=smoke", "search.n_evals=12", "seed=1"), tmp_path / "b")
    assert [r["arch"] for r in _records(tmp_path / "b")] != [r["arch"] for r in _records(smoke_run)]


def test_search_reuses_a_trained_supernet(compose_cfg, tmp_path: Path, smoke_run: Path) -> None:
    ckpt = smoke_run / "supernet" / "final.ckpt"
    cfg = compose_cfg(
        "experiment=smoke",
        "search.n_evals=12",
        "stages=[search,select]",
        f"supernet.checkpoint={ckpt}",
    )
    pipeline.run(cfg, tmp_path)
    assert not (tmp_path / "supernet").exists()
    # same weights, same seed: the same archive as the run that trained them
    assert _records(tmp_path) == _records(smoke_run)


def test_angle_and_accuracy_runs(compose_cfg, tmp_path: Path, smoke_run: Path) -> None:
    ckpt = smoke_run / "supernet" / "final.ckpt"
    for metric in ("angle", "accuracy"):
        cfg = compose_cfg(
            "experiment=smoke",
            f"metric={metric}",
            "stages=[search]",
            f"supernet.checkpoint={ckpt}",
            "search=evolution",
            "search.population=6",
            "search.top_k=3",
            "search.n_mutation=3",
            "search.n_crossover=3",
            "objective=none",
        )
        pipeline.run(cfg, tmp_path / metric)
        recs = _records(tmp_path / metric)
        assert len(recs) == 8 and not any(r["failed"] for r in recs)
        values = [r["metric"][metric] for r in recs]
        if metric == "angle":
            assert all(v >= 0 for v in values) and len(set(values)) > 1
        else:  # one epoch on 4 channels: the accuracies may tie, but they are fractions
            assert all(0.0 <= v <= 1.0 for v in values)


def test_rlnas_trains_on_every_image_without_a_valid_split(compose_cfg, tmp_path: Path) -> None:
    for name in ("rlnas_nb201", "rlnas_darts"):
        assert compose_cfg(f"experiment={name}").dataset.valid_fraction == 0.0
    cfg = compose_cfg(
        "experiment=smoke",
        "supernet=rlnas",
        "metric=angle",
        "objective=none",
        "search=random",
        "dataset.valid_fraction=0",
        "stages=[supernet,search]",
    )
    pipeline.run(cfg, tmp_path)
    recs = _records(tmp_path)
    assert len(recs) == 8 and not any(r["failed"] for r in recs)


def test_csv_logger_gets_the_search_numbers(compose_cfg, tmp_path: Path) -> None:
    pipeline.run(compose_cfg("experiment=smoke", "logger=csv"), tmp_path)
    text = "".join(p.read_text() for p in tmp_path.rglob("metrics.csv"))
    assert "search/hv" in text and "supernet/loss_epoch" in text


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError("run finished before it could be killed")
        time.sleep(0.02)
    raise AssertionError("no evaluations appeared")


def test_killed_run_resumes_to_the_same_archive(tmp_path: Path) -> None:
    args = ["experiment=smoke", "search.n_evals=30", "metric.val_images=128"]
    ref = run_cli(*args, f"hydra.run.dir={tmp_path / 'ref'}")
    assert ref.returncode == 0, ref.stderr
    killed = tmp_path / "killed"
    env = dict(os.environ, WANDB_MODE="disabled")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *args, f"hydra.run.dir={killed}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_lines(killed / "search" / "evaluations.jsonl", 7, proc, timeout=240)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    partial = _records(killed)
    assert 7 <= len(partial) < 30
    again = run_cli(*args, f"hydra.run.dir={killed}")
    assert again.returncode == 0, again.stderr
    assert "resuming search" in (killed / "run.log").read_text()
    final = _records(killed)
    assert final[: len(partial)] == partial, "finished evaluations are kept as they were"
    assert final == _records(tmp_path / "ref")


def test_multirun_sweep_writes_complete_independent_jobs(tmp_path: Path) -> None:
    res = run_cli(
        "-m",
        "experiment=smoke",
        "seed=1,2",
        "metric=accuracy,flatness",
        f"hydra.sweep.dir={tmp_path}",
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    jobs = sorted(p.parent.parent for p in tmp_path.glob("*/search/done.json"))
    assert len(jobs) == 4
    # one directory per job, named after its overrides (experiment is left out of the name)
    assert {p.name for p in jobs} == {
        "metric=accuracy,seed=1",
        "metric=accuracy,seed=2",
        "metric=flatness,seed=1",
        "metric=flatness,seed=2",
    }
    for job in jobs:
        assert (job / "final" / "selection.json").is_file()
        assert (job / ".hydra" / "config.yaml").is_file()


def test_interrupted_supernet_training_resumes_to_the_same_weights(
    compose_cfg, tmp_path: Path, monkeypatch
) -> None:
    from nasx.io import load_state_dict
    from nasx.lit.supernet import SupernetLitModule

    overrides = ("experiment=smoke", "supernet.epochs=3", "stages=[supernet]")
    pipeline.run(compose_cfg(*overrides), tmp_path / "ref")

    original = SupernetLitModule.training_step

    def crash_in_epoch_two(self, batch, batch_idx):
        if self.current_epoch == 2:
            raise RuntimeError("simulated crash")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(SupernetLitModule, "training_step", crash_in_epoch_two)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pipeline.run(compose_cfg(*overrides), tmp_path / "cut")
    assert (tmp_path / "cut" / "supernet" / "last.ckpt").exists()
    assert not (tmp_path / "cut" / "supernet" / "final.ckpt").exists()
    monkeypatch.setattr(SupernetLitModule, "training_step", original)
    pipeline.run(compose_cfg(*overrides), tmp_path / "cut")
    ref = load_state_dict(tmp_path / "ref" / "supernet" / "final.ckpt")
    got = load_state_dict(tmp_path / "cut" / "supernet" / "final.ckpt")
    assert ref.keys() == got.keys()
    assert all(torch.allclose(ref[k], got[k], atol=1e-6) for k in ref)
