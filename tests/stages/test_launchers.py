"""Hydra launchers as config: joblib and submitit sweeps, and a killed sweep resumed job by job."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import run_cli

JOBS = ("seed=0", "seed=1")


def _sweep(sweep_dir: Path, launcher: str, *extra: str) -> None:
    args = ["-m", f"hydra/launcher={launcher}", "experiment=smoke", "seed=0,1", *extra]
    if launcher == "joblib":
        args.append("hydra.launcher.n_jobs=2")
    res = run_cli(*args, f"hydra.sweep.dir={sweep_dir}", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]


def _mtimes(job: Path) -> dict[str, int]:
    """Modification times of every stage output of a job."""
    outputs = [p for d in ("supernet", "search", "final", "plots") for p in (job / d).rglob("*")]
    return {str(p.relative_to(job)): p.stat().st_mtime_ns for p in outputs if p.is_file()}


def test_slurm_example_extends_submitit_slurm(compose_cfg) -> None:
    cfg = compose_cfg("hydra/launcher=slurm_gpu", "hydra.launcher.partition=a100", hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "a100"  # the command line still wins
    assert (launcher.gpus_per_node, launcher.tasks_per_node) == (1, 1)
    assert launcher.timeout_min > 0 and launcher.cpus_per_task > 0 and launcher.mem_gb > 0
    # submitit's files go inside the sweep directory, beside the job directories
    assert OmegaConf.to_container(launcher)["submitit_folder"] == "${hydra.sweep.dir}/.submitit/%j"


@pytest.mark.slow
def test_joblib_sweep_runs_jobs_in_parallel_processes(tmp_path: Path) -> None:
    """Two joblib jobs that only train the supernet (~20 s alone, ~50 s on a busy machine)."""
    _sweep(tmp_path, "joblib", "stages=[supernet]")
    for name in JOBS:
        assert (tmp_path / name / "supernet" / "final.ckpt").is_file(), name
        assert (tmp_path / name / ".hydra" / "config.yaml").is_file()
    logs = [(tmp_path / name / "run.log").read_text() for name in JOBS]
    assert all("supernet: trained" in log for log in logs)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_sweep_completes_and_resumes_job_by_job(tmp_path: Path, launcher: str) -> None:
    _sweep(tmp_path, launcher)
    for name in JOBS:
        assert (tmp_path / name / "search" / "done.json").is_file(), name
        assert (tmp_path / name / "final" / "selection.json").is_file(), name
    if launcher == "submitit_local":
        assert (tmp_path / ".submitit").is_dir()
    # a sweep killed after seed=0 finished and while seed=1 was searching
    finished, cut = (tmp_path / name for name in JOBS)
    (cut / "search" / "done.json").unlink()
    (cut / "final" / "selection.json").unlink()
    before = _mtimes(finished)
    kept = (cut / "supernet" / "final.ckpt").stat().st_mtime_ns
    _sweep(tmp_path, launcher)
    assert _mtimes(finished) == before, "a finished job runs none of its stages again"
    assert "search: done in" in (finished / "run.log").read_text()
    assert (cut / "supernet" / "final.ckpt").stat().st_mtime_ns == kept
    assert (cut / "search" / "done.json").is_file() and (cut / "final" / "selection.json").is_file()
    assert "resuming search" in (cut / "run.log").read_text()
