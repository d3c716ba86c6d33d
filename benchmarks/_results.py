"""What every benchmark shares: the machine's description and its section of RESULTS.md."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from nasx.io import write_text_atomic


def cpu_count() -> int:
    """CPUs this process may run on (what ``nproc`` prints)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_name() -> str:
    """The CPU's model name from lscpu (the processor string where lscpu is absent)."""
    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in out.splitlines()
                if ln.lower().startswith("model name")
            ),
            model,
        )
    except (OSError, subprocess.CalledProcessError):
        pass
    return model


def cpu_model() -> str:
    """``"<n>-core CPU (<model name>)"``."""
    return f"{cpu_count()}-core CPU ({cpu_name()})"


def write_section(path: Path, start: str, end: str, text: str) -> None:
    """Replace the text between ``start`` and ``end`` in ``path`` (append it when absent).

    ``text`` includes both markers; the rest of the file is kept; the write is atomic.
    """
    old = path.read_text() if path.exists() else "# nasx benchmark results\n"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + text + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    write_text_atomic(path, new)
