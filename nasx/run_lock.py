"""One process per run directory: an OS file lock on ``<run_dir>/.nasx.lock``.

The lock is a ``flock`` taken through the ``filelock`` package, so the operating system
releases it when the holder exits or is killed; nothing has to clean it up. Beside it,
``.nasx.lock.json`` names the holder (pid, host, start time) for the message another process
gets. The sidecar is removed on a clean release; one still present when the lock is free was
left by a killed process, whose lock is then taken over (and the takeover logged).

Only the launching process (DDP global rank zero) takes the lock; `nasx.pipeline.run`
decides that, since a worker rank started by the holder would otherwise wait for its parent.
From the command line, Hydra's callback (`nasx.hydra_callbacks.RunDirCheck`) takes it before
Hydra writes ``.hydra/``, so a refused process changes nothing in the directory; the
pipeline's `hold_run_dir` then finds it held by this process and holds it on.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from nasx.errors import NasxError
from nasx.io import write_json_atomic

log = logging.getLogger(__name__)

LOCK_NAME = ".nasx.lock"
HOLDER_NAME = ".nasx.lock.json"
#: how long a refused process waits for a holder that has the lock but not yet its sidecar
_SIDECAR_WAIT_S = 2.0
#: the locks this process holds, by resolved run directory
_HELD: dict[Path, RunLock] = {}


class RunDirLocked(NasxError):
    """Another live process holds the run directory."""


class RunLock:
    """An exclusive, OS-released lock on one run directory.

    Args:
        run_dir: the run directory (created if missing).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.lock_path = self.run_dir / LOCK_NAME
        self.holder_path = self.run_dir / HOLDER_NAME
        self._lock: FileLock | None = None
        #: the sidecar of the dead holder this lock was taken from, until `announce` logs it
        self.taken_over_from: dict[str, Any] | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._lock is not None and self._lock.is_locked

    def acquire(self, announce: bool = True) -> None:
        """Take the lock at once, or raise `RunDirLocked` naming the holder and the fix.

        A sidecar found once the lock is taken belongs to a process that died holding it: its
        pid is logged as taken over (now, or by `announce` once logging is set up: Hydra's
        callback takes the lock before the run's log file exists), and the sidecar is
        rewritten for this process.
        """
        if self.held:
            return
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            lock = FileLock(self.lock_path, timeout=0)
            lock.acquire()
        except Timeout:
            raise RunDirLocked(self._refusal()) from None
        except OSError as exc:
            raise NasxError(
                f"run directory {self.run_dir} is not writable ({exc.strerror}): choose "
                "another with hydra.run.dir=<path>"
            ) from exc
        self._lock = lock
        _HELD[self.run_dir] = self
        self.taken_over_from = read_holder(self.run_dir)
        write_json_atomic(self.holder_path, holder_record())
        if announce:
            self.announce()

    def announce(self) -> None:
        """Log the holder this lock was taken over from (once; nothing when none)."""
        stale, self.taken_over_from = self.taken_over_from, None
        if stale is not None:
            log.warning(
                "run lock: took over %s from pid %s on %s (started %s), which no longer runs",
                self.run_dir,
                stale.get("pid", "?"),
                stale.get("host", "?"),
                stale.get("started", "?"),
            )

    def release(self) -> None:
        """Remove the sidecar, then release the lock (no-op when not held)."""
        if not self.held or self._lock is None:
            return
        if _HELD.get(self.run_dir) is self:
            del _HELD[self.run_dir]
        # the sidecar goes first: once the lock is free, the next holder writes its own
        self.holder_path.unlink(missing_ok=True)
        self._lock.release()
        self._lock = None

    def _refusal(self) -> str:
        holder = None
        end = time.monotonic() + _SIDECAR_WAIT_S
        while holder is None and time.monotonic() < end:
            holder = read_holder(self.run_dir)  # the holder may not have written it yet
            if holder is None:
                time.sleep(0.05)
        who = (
            f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
            f"(since {holder.get('started', '?')})"
            if holder is not None
            else "another process"
        )
        return (
            f"run directory {self.run_dir} is in use by {who}: wait for it to finish, or "
            "pass another hydra.run.dir=<path> (hydra.sweep.dir=<path> for a sweep)"
        )


def holder_record() -> dict[str, Any]:
    """What the sidecar says about this process: pid, host and start time (UTC, ISO 8601)."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def read_holder(run_dir: str | Path) -> dict[str, Any] | None:
    """The sidecar of ``run_dir`` (``None``: none, or unreadable)."""
    try:
        data = json.loads((Path(run_dir) / HOLDER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def held_lock(run_dir: str | Path) -> RunLock | None:
    """The lock this process holds on ``run_dir`` (``None``: none)."""
    lock = _HELD.get(Path(run_dir).resolve())
    return lock if lock is not None and lock.held else None


@contextmanager
def hold_run_dir(run_dir: str | Path) -> Iterator[RunLock]:
    """Hold ``run_dir``'s lock for the ``with`` block (`RunLock.acquire`, then release).

    A lock this process already holds (taken by Hydra's callback) is used as it is and left
    held: its taker releases it.
    """
    outer = held_lock(run_dir)
    if outer is not None:
        yield outer
        return
    lock = RunLock(run_dir)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


__all__ = [
    "RunDirLocked",
    "RunLock",
    "held_lock",
    "hold_run_dir",
    "holder_record",
    "read_holder",
]
