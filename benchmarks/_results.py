"""What every benchmark shares: the machine's description and its section of RESULTS.md."""

from __future__ import annotations

import os
import platform
import subprocess
import time
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


def cpu_clock() -> tuple[float, float, float] | None:
    """(wall s, busy CPU s of the machine, CPU s of this process); ``None`` off Linux.

    Two readings bracket a timed run; `other_cores` turns them into the load that other
    processes added meanwhile (these machines are shared: the number says how noisy a run was).
    """
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    busy = (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system


def other_cores(start: tuple[float, float, float] | None) -> float | None:
    """Mean number of cores that processes other than this one kept busy since ``start``."""
    end = cpu_clock()
    if start is None or end is None or end[0] <= start[0]:
        return None
    return max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / (end[0] - start[0]))


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
