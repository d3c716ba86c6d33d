"""What the Lightning-vs-plain-loop throughput benchmarks share: runs, repeats and the report.

`supernet_throughput.py` and `retrain_throughput.py` train the same network with a nasx
Lightning module and with the same work written as a plain PyTorch loop; each supplies its
configurations and the two ``run_*(setup, epochs) -> Run`` sides, and this module times the
sides in ABBA order, checks that they ended alike, and writes the common table and reading.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from _results import cpu_count, cpu_name
from lightning.pytorch.callbacks import Callback

#: other processes' load (cores) above which the reading warns that the runs were noisy
BUSY = 0.25


@dataclass(frozen=True)
class Run:
    """One timed training run."""

    steps: int
    total_s: float  # from the side's construction (network, optimiser or Trainer) to the end
    loop_s: float  # the epoch loop only (Lightning: on_train_start to on_train_end)
    state: dict[str, torch.Tensor]  # the final weights (and, with an EMA, its weights)
    other_cores: float | None  # CPU cores other processes kept busy meanwhile (None: unknown)


@dataclass(frozen=True)
class Result:
    """One configuration's timed runs, paired in the order they ran."""

    config: Any  # the benchmark's configuration; its ``name`` labels the rows
    plain: list[Run]
    lightning: list[Run]
    max_abs_diff: float

    @property
    def steps(self) -> int:
        return self.plain[0].steps

    def rate(self, side: str, loop: bool = False) -> float:
        """Median steps/s of ``side`` (``plain`` or ``lightning``), whole run or loop only."""
        runs: list[Run] = getattr(self, side)
        return statistics.median(r.steps / (r.loop_s if loop else r.total_s) for r in runs)

    @property
    def ratio(self) -> float:
        return self.rate("lightning") / self.rate("plain")

    @property
    def loop_ratio(self) -> float:
        return self.rate("lightning", loop=True) / self.rate("plain", loop=True)

    @property
    def other_load(self) -> tuple[float, float] | None:
        """Median and largest number of cores other processes kept busy during the runs."""
        loads = [r.other_cores for r in self.plain + self.lightning]
        if any(v is None for v in loads):
            return None
        known = [v for v in loads if v is not None]
        return statistics.median(known), max(known)

    @property
    def pair_ratios(self) -> list[float]:
        """Lightning/plain steps/s of each back-to-back pair: the run-to-run noise."""
        return [p.total_s / q.total_s for p, q in zip(self.plain, self.lightning, strict=True)]


class LoopTimer(Callback):
    """Times the fit loop proper, leaving out Trainer construction, setup and teardown."""

    def __init__(self) -> None:
        self.start = self.end = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.end = time.perf_counter()


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    if a.keys() != b.keys():
        raise RuntimeError("the two sides ended with different state-dict keys")
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def time_sides(
    config: Any,
    setup: Any,
    epochs: int,
    repeats: int,
    run_plain: Callable[[Any, int], Run],
    run_lightning: Callable[[Any, int], Run],
    log: bool = True,
) -> Result:
    """One warm-up of each side, then ``repeats`` pairs in ABBA order; the `Result`.

    Alternating which side goes first means a machine that drifts faster or slower over the
    minutes favours neither side (a fixed order biased the ratio to 0.924 in one run). Every
    run starts from the same weights and sees the same batches and random draws, so
    ``max_abs_diff`` over all pairs must be ~0 when both sides did the same work.
    """
    run_plain(setup, epochs)  # warm-up: first-call costs (allocator, oneDNN kernels) hit both
    run_lightning(setup, epochs)
    plain: list[Run] = []
    lit: list[Run] = []
    sides: list[tuple[str, list[Run], Callable[[Any, int], Run]]] = [
        ("plain", plain, run_plain),
        ("lightning", lit, run_lightning),
    ]
    for i in range(repeats):
        for side, runs, fn in sides if i % 2 == 0 else sides[::-1]:
            runs.append(fn(setup, epochs))
            if log:
                r = runs[-1]
                load = "?" if r.other_cores is None else f"{r.other_cores:.2f}"
                print(f"  {side:9s} {r.total_s:7.2f} s  {r.steps / r.total_s:7.2f} steps/s  "
                      f"other processes: {load} cores", flush=True)  # fmt: skip
    diff = max(max_abs_diff(p.state, q.state) for p in plain for q in lit)
    return Result(config, plain, lit, diff)


def machine() -> dict[str, str]:
    return {
        "nproc": str(cpu_count()),
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
    }


def table(results: Sequence[Result]) -> str:
    rows = [
        "| config | steps | plain steps/s | lightning steps/s | ratio (L/plain) "
        "| pairwise ratios | in-loop ratio | other load (cores) | final weight max-abs-diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        pairs = r.pair_ratios
        load = r.other_load
        shown = "n/a" if load is None else f"{load[0]:.2f} ({load[1]:.2f})"
        rows.append(
            f"| {r.config.name} | {r.steps} | {r.rate('plain'):.2f} | {r.rate('lightning'):.2f} "
            f"| {r.ratio:.3f} | {min(pairs):.2f}-{max(pairs):.2f} | {r.loop_ratio:.3f} "
            f"| {shown} | {r.max_abs_diff:.1e} |"
        )
    return "\n".join(rows)


def fixed_overhead_s(r: Result) -> float:
    """Median one-off cost outside the epoch loop, Lightning minus plain, in seconds."""
    med = statistics.median
    return med(q.total_s - q.loop_s for q in r.lightning) - med(
        p.total_s - p.loop_s for p in r.plain
    )


def per_config_reading(results: Sequence[Result]) -> tuple[str, str]:
    """``(per-configuration sentences joined by "; ", a load warning or "")`` for the reading."""
    parts = []
    for r in results:
        plain_ms = 1000.0 / r.rate("plain", loop=True)
        extra_ms = 1000.0 / r.rate("lightning", loop=True) - plain_ms
        pairs = r.pair_ratios
        noise = (
            f"; the back-to-back pairs range from {min(pairs):.2f} to {max(pairs):.2f}, so the "
            "difference is within run-to-run noise"
            if min(pairs) <= 1.0 <= max(pairs)
            else ""
        )
        parts.append(
            f"on *{r.config.name}* Lightning runs at {100 * r.ratio:.0f}% of the plain loop's "
            f"speed ({100 * r.loop_ratio:.0f}% inside the epoch loop, {extra_ms:+.1f} ms on a "
            f"{plain_ms:.0f} ms step, and {fixed_overhead_s(r):+.2f} s once per fit for the "
            f"Trainer's construction, setup and teardown{noise})"
        )
    busy = [r.other_load[1] for r in results if r.other_load is not None]
    warning = (
        f" Other processes kept up to {max(busy):.1f} of the {os.cpu_count()} cores busy "
        "during some runs; with torch's default of one thread per core, a busy core stalls "
        "every parallel op, so those runs are slower and noisier."
        if busy and max(busy) > BUSY
        else ""
    )
    return "; ".join(parts), warning


def quiet_lightning(*messages: str) -> None:
    """Hide Lightning's device banner and warnings that are not about the benchmark.

    ``messages`` are further warning patterns the calling benchmark expects.
    """
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # Lightning 2.6 builds torch's deprecated LeafSpec on every step; not ours to fix
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    for message in messages:
        warnings.filterwarnings("ignore", message=message)
