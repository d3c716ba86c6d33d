"""One process per run directory (`nasx.run_lock`): refusal, takeover, and the pipeline's use."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nasx import pipeline
from nasx.run_lock import RunDirLocked, RunLock, held_lock, hold_run_dir, read_holder
from tests.conftest import ROOT, run_cli

# a holder in another process: takes the lock, says so, then sleeps until killed
_HOLDER = (
    "import sys, time\n"
    "from nasx.run_lock import RunLock\n"
    "lock = RunLock(sys.argv[1])\n"
    "lock.acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(600)\n"
)


def _start_holder(run_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(run_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_acquire_writes_the_holder_and_release_removes_it(tmp_path: Path) -> None:
    lock = RunLock(tmp_path / "run")
    lock.acquire()
    assert lock.held
    holder = read_holder(tmp_path / "run")
    assert holder is not None
    assert (holder["pid"], holder["host"]) == (os.getpid(), socket.gethostname())
    lock.acquire()  # already held by this object: a no-op
    lock.release()
    assert not lock.held and read_holder(tmp_path / "run") is None
    lock.release()  # not held: a no-op
    with hold_run_dir(tmp_path / "run") as again:  # free again
        assert again.held
    assert not again.held


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    with hold_run_dir(tmp_path), pytest.raises(RunDirLocked) as info:
        RunLock(tmp_path).acquire()
    message = str(info.value)
    assert "\n" not in message
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in message
    assert "hydra.run.dir=" in message


def test_hold_run_dir_reuses_the_lock_this_process_holds(tmp_path: Path) -> None:
    outer = RunLock(tmp_path)  # as Hydra's callback takes it before the pipeline runs
    outer.acquire()
    with hold_run_dir(tmp_path / ".") as inner:
        assert inner is outer and held_lock(tmp_path) is outer
    assert outer.held, "the pipeline leaves a lock it did not take to its taker"
    outer.release()
    assert held_lock(tmp_path) is None


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path, caplog) -> None:
    proc = _start_holder(tmp_path)
    with pytest.raises(RunDirLocked, match=f"pid {proc.pid} "):
        RunLock(tmp_path).acquire()
    _kill(proc)
    assert read_holder(tmp_path)["pid"] == proc.pid  # the dead holder's sidecar stays
    with caplog.at_level(logging.WARNING, logger="nasx.run_lock"), hold_run_dir(tmp_path):
        assert read_holder(tmp_path)["pid"] == os.getpid()
    assert f"took over {tmp_path} from pid {proc.pid}" in caplog.text


def test_the_cli_refuses_a_held_run_directory(tmp_path: Path) -> None:
    proc = _start_holder(tmp_path)
    try:
        res = run_cli("experiment=smoke", f"hydra.run.dir={tmp_path}", timeout=120)
    finally:
        _kill(proc)
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.startswith("nasx: error:")]
    assert len(lines) == 1, res.stderr[-2000:]
    assert f"in use by pid {proc.pid} on host {socket.gethostname()}" in lines[0]
    assert "wait for it to finish" in lines[0] and "hydra.run.dir=" in lines[0]
    # refused before Hydra wrote .hydra/ (the holder's config record stays as it was)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".nasx.lock", ".nasx.lock.json"]


def test_the_pipeline_takes_over_from_a_killed_holder(tmp_path: Path, compose_cfg, caplog) -> None:
    proc = _start_holder(tmp_path)
    _kill(proc)
    with caplog.at_level(logging.WARNING, logger="nasx.run_lock"):
        pipeline.run(compose_cfg("experiment=smoke", "stages=[supernet]"), tmp_path)
    assert f"from pid {proc.pid}" in caplog.text
    assert (tmp_path / "supernet" / "final.ckpt").is_file()
    assert read_holder(tmp_path) is None  # released at the end of the run


def test_a_worker_rank_does_not_take_the_lock(tmp_path: Path, compose_cfg, monkeypatch) -> None:
    # a DDP worker rank runs while its rank-zero parent holds the lock: it must not wait on it
    monkeypatch.setattr(pipeline, "is_rank_zero", lambda: False)
    with hold_run_dir(tmp_path):
        pipeline.run(compose_cfg("experiment=smoke", "stages=[profile]"), tmp_path)


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if path.exists():
            return
        if proc.poll() is not None:
            raise AssertionError("the first run finished before the second started")
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear")


def _start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=ROOT,
        env=dict(os.environ, WANDB_MODE="disabled"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_runs_on_one_directory_one_is_refused(tmp_path: Path) -> None:
    """The issue's report: the same command twice, a second apart, on one run directory."""
    args = ["experiment=smoke", "seed=5", f"hydra.run.dir={tmp_path}"]
    first = _start_cli(*args)
    time.sleep(1.0)
    second = _start_cli(*args)
    errs = {p.pid: p.communicate(timeout=300)[1] for p in (first, second)}
    codes = sorted((p.returncode, p.pid) for p in (first, second))
    assert [c for c, _ in codes] == [0, 2], errs
    (_, winner), (_, loser) = codes
    refusal = [line for line in errs[loser].splitlines() if line.startswith("nasx: error:")]
    assert len(refusal) == 1 and f"in use by pid {winner} " in refusal[0], errs[loser]
    # the winner's outputs are complete, and every architecture was evaluated once
    assert (tmp_path / "final" / "selection.json").is_file()
    lines = (tmp_path / "search" / "evaluations.jsonl").read_text().splitlines()
    archs = [json.loads(line)["arch"] for line in lines]
    assert len(archs) == 8 and len(set(archs)) == 8
    assert read_holder(tmp_path) is None


@pytest.mark.slow
def test_a_killed_run_is_taken_over_by_the_next(tmp_path: Path) -> None:
    args = ["experiment=smoke", f"hydra.run.dir={tmp_path}"]
    killed = _start_cli(*args)
    try:
        _wait_for(tmp_path / "supernet" / "init.ckpt", killed, timeout=120)
    finally:
        _kill(killed)
    assert read_holder(tmp_path)["pid"] == killed.pid
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"from pid {killed.pid}" in (tmp_path / "run.log").read_text()
    assert (tmp_path / "final" / "selection.json").is_file()


@pytest.mark.slow
def test_a_sweep_on_a_held_sweep_directory_is_refused(tmp_path: Path) -> None:
    proc = _start_holder(tmp_path)
    try:
        res = run_cli("-m", "experiment=smoke", "seed=0,1", f"hydra.sweep.dir={tmp_path}")
    finally:
        _kill(proc)
    assert res.returncode == 2
    assert f"in use by pid {proc.pid} " in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".nasx.lock", ".nasx.lock.json"]


def test_the_hydra_callback_pickles_without_its_lock(tmp_path: Path) -> None:
    # launchers (joblib, submitit) pickle callbacks to their workers: the callback keeps the
    # locked path, not the OS lock, which stays with the launching process
    import pickle

    from nasx.hydra_callbacks import RunDirCheck

    callback = RunDirCheck()
    callback.on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert held_lock(tmp_path) is not None
    copy = pickle.loads(pickle.dumps(callback))
    assert vars(copy) == {"_locked": tmp_path.resolve()}
    callback.on_multirun_end(OmegaConf.create({}))
    assert held_lock(tmp_path) is None and read_holder(tmp_path) is None
