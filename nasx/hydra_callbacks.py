"""Hydra callbacks: checks that must run before Hydra creates the output directory."""

from __future__ import annotations

import atexit
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

if TYPE_CHECKING:
    from nasx.run_lock import RunLock


def _make_writable_dir(path: Path) -> str | None:
    """Create ``path`` (Hydra would next) and probe it; the reason it failed, or ``None``."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".nasx_write_probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


class RunDirCheck(Callback):
    """Ends the run with one clear line when the run or sweep directory cannot be written.

    It also takes the directory's lock (`nasx.run_lock`) before Hydra writes ``.hydra/``
    there, so a process refused because another holds the directory changes nothing in it:
    the run directory of a single run, the sweep directory of a sweep (each job's run
    directory is then locked by `nasx.pipeline.run`). DDP worker ranks take no lock.
    """

    def __init__(self) -> None:
        # the locked directory, not the lock: launchers pickle callbacks to their workers,
        # which must neither hold nor release the launching process's lock
        self._locked: Path | None = None

    def _check(self, path: str, key: str) -> None:
        reason = _make_writable_dir(Path(path))
        if reason is not None:
            print(
                f"nasx: error: the output directory {path} is not writable ({reason}): "
                f"choose another with {key}=<path>",
                file=sys.stderr,
            )
            sys.exit(2)
        self._take_lock(path)

    def _take_lock(self, path: str) -> None:
        from nasx.errors import NasxError
        from nasx.pipeline import is_rank_zero
        from nasx.run_lock import RunLock

        if not is_rank_zero():
            return
        lock = RunLock(path)
        try:
            lock.acquire(announce=False)  # logged in on_job_start, into the run's log file
        except NasxError as exc:
            print(f"nasx: error: {exc}", file=sys.stderr)
            sys.exit(2)
        self._locked = lock.run_dir
        atexit.register(lock.release)  # a run ended by sys.exit still leaves no stale sidecar

    def _held(self) -> RunLock | None:
        from nasx.run_lock import held_lock

        return None if self._locked is None else held_lock(self._locked)

    def _release(self) -> None:
        lock = self._held()
        if lock is not None:
            lock.release()
        self._locked = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir, "hydra.run.dir")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        lock = self._held()
        if lock is not None:
            lock.announce()

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._release()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir, "hydra.sweep.dir")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._release()
