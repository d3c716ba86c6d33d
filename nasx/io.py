"""Atomic file writes and an append-only journal that survives being killed mid-write."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from nasx.errors import NasxError


def _atomic(path: Path, write: Callable[[Any], None], mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either the old or the new file."""
    _atomic(Path(path), lambda fh: fh.write(text), "w")


def write_csv_atomic(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as CSV, atomically; the header is the union of their keys (first seen)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def save_torch_atomic(path: str | Path, obj: Any) -> None:
    """``torch.save`` through a temporary file and a rename."""
    _atomic(Path(path), lambda fh: torch.save(obj, fh), "wb")


def save_npy_atomic(path: str | Path, array: Any) -> None:
    """``numpy.save`` (no pickles) through a temporary file and a rename."""
    import numpy as np

    _atomic(Path(path), lambda fh: np.save(fh, array, allow_pickle=False), "wb")


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from a nasx weights file or a Lightning checkpoint, safely.

    Uses ``weights_only=True``; a missing, unreadable or corrupt file raises `NasxError`.
    """
    p = Path(path)
    if not p.is_file():
        raise NasxError(f"checkpoint {p} does not exist: point the path at a .ckpt/.pt file")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise NasxError(
            f"checkpoint {p} is unreadable or corrupt ({type(exc).__name__}): delete it and "
            "re-run the stage that writes it, or point to another checkpoint"
        ) from exc
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise NasxError(f"checkpoint {p} holds no state dict: point to a nasx/Lightning checkpoint")
    return obj


class Journal:
    """Append-only JSON-lines file that survives being killed.

    Every record is written through to the operating system before `append` returns, so a
    killed process loses none; ``fsync_every`` > 1 batches the (slow) ``fsync`` calls that also
    protect against a machine crash, for journals of many cheap records. A kill while writing
    leaves at most one torn last line, which `read` skips and the next `append` removes.
    """

    def __init__(self, path: str | Path, fsync_every: int = 1) -> None:
        self.path = Path(path)
        self.fsync_every = max(1, fsync_every)
        self._fh: Any = None
        self._pending = 0

    def read(self) -> list[dict[str, Any]]:
        """All complete records, in the order they were appended."""
        return list(self._iter())

    def _iter(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open("r") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    return  # torn tail of a killed write
                yield json.loads(line)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record (written through; fsync'ed every ``fsync_every`` records)."""
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._drop_torn_tail()
            self._fh = self.path.open("a")
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()
        self._pending += 1
        if self._pending >= self.fsync_every:
            self.sync()

    def sync(self) -> None:
        """``fsync`` what was appended so far."""
        if self._fh is not None and self._pending:
            os.fsync(self._fh.fileno())
        self._pending = 0

    def close(self) -> None:
        """Sync and close the file (appending again reopens it)."""
        if self._fh is not None:
            self.sync()
            self._fh.close()
            self._fh = None

    def _drop_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.path.open("r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)
