"""Ray evaluation scaling: evaluations per second with 2 Ray workers against 1, and Ray's overhead.

nasx's ``evaluator.backend=ray`` (`nasx.ray_backend.RayEvaluator`) spreads each batch of
candidates over Ray worker actors. Two measurements, both on GeNAS flatness
(`nasx.metric.FlatnessMetric`, a CPU-bound metric that reads the supernet) over a random-init
NB201 supernet and ``FakeData``, with ``TorchRunner`` and one torch thread per process:

* *scaling*: a metric costing ~100 ms+ per candidate, a batch of ``--batch`` distinct random
  architectures evaluated by a 1-worker and a 2-worker `RayEvaluator` side by side (both pools
  alive on one local Ray, so the idle one costs nothing), in alternating order (1, 2, 2, 1,
  ...), ``--repeats`` times each after one warm-up; candidate evaluations per second from the
  median batch time, and their ratio (goal >= 1.8 on 2 cores);
* *overhead*: a metric costing ~10 ms, a batch of 16, timed with the sequential `Evaluator`
  in this process and with 1- and 2-worker `RayEvaluator`s (rotating order); the per-batch
  overhead is the 1-worker median minus the sequential median (the same work on one core: the
  difference is Ray's dispatch, transfer and the metric's state check);
* *concurrency check*: a metric that waits 100 ms without using the CPU, 1 worker against 2
  as in *scaling*: whether the backend runs both workers at once whatever CPU it gets.

Every side's records are checked equal to the sequential evaluator's (timing fields aside).
The machine is shared: the number of cores other processes kept busy is read from
``/proc/stat`` over a 3 s window with every worker idle, before and after the timed runs.

Usage::

    WANDB_MODE=disabled .venv/bin/python benchmarks/ray_scaling.py [--quick] [--write-results]

``--write-results`` replaces this benchmark's section of ``benchmarks/RESULTS.md`` (between its
``<!-- ray_scaling:start -->`` and ``<!-- ray_scaling:end -->`` markers) and keeps the rest.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _results import cpu_clock, cpu_count, cpu_name, other_cores, write_section

from nasx.data import FakeData
from nasx.evaluator import Evaluator
from nasx.metric import FlatnessMetric, Metric, MetricContext, TorchRunner
from nasx.ray_backend import RayCluster, RayEvaluator, RaySettings
from nasx.search_space import NB201Space
from nasx.search_space.base import Architecture
from nasx.supernet import build_supernet

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- ray_scaling:start -->", "<!-- ray_scaling:end -->"


@dataclass(frozen=True)
class Setup:
    """One metric cost: the supernet and flatness settings."""

    name: str
    channels: int
    image_size: int
    recal_images: int
    val_images: int
    batch: int
    #: > 0: a metric that waits this long without using the CPU (`WaitMetric`), not flatness
    wait_ms: float = 0.0


@dataclass
class Timing:
    """Batch times (s) of each side, and what they did."""

    setup: Setup
    times: dict[str, list[float]] = field(default_factory=dict)
    #: cores the driver and the side's workers kept busy during each timed batch
    cores: dict[str, list[float]] = field(default_factory=dict)
    local_ms: float = 0.0  # sequential cost of one candidate (median of 3 batches)

    def median(self, side: str) -> float:
        return statistics.median(self.times[side])

    def rate(self, side: str) -> float:
        """Candidate evaluations per second from the median batch time."""
        return self.setup.batch / self.median(side)


class WaitMetric(Metric):
    """Waits ``ms`` per candidate without using the CPU (checks that workers run at once)."""

    name = "wait"
    needs_supernet = False
    needs_valid = False

    def __init__(self, ms: float) -> None:
        self.ms = ms

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        time.sleep(self.ms / 1000)
        return {self.name: float(sum(arch.genes))}


def setups(quick: bool, batch: int) -> tuple[Setup, Setup, Setup]:
    """``(scaling, overhead, concurrency)`` metrics: ~100+ ms and ~10 ms of CPU, 100 ms wait."""
    if quick:
        tiny = Setup("tiny", 4, 8, 16, 16, 4)
        return tiny, tiny, Setup("wait 20 ms", 4, 8, 16, 16, 4, wait_ms=20)
    heavy = Setup("NB201 C=8 N=1 16px, recal 128, valid 256", 8, 16, 128, 256, batch)
    light = Setup("NB201 C=4 N=1 8px, recal 16, valid 16", 4, 8, 16, 16, 16)
    wait = Setup("wait 100 ms, no CPU", 4, 8, 16, 16, batch, wait_ms=100)
    return heavy, light, wait


def build(setup: Setup, seed: int = 0) -> tuple[Evaluator, list[Architecture]]:
    """The sequential evaluator of ``setup`` and a batch of distinct random architectures."""
    torch.manual_seed(seed)
    space = NB201Space(
        num_classes=10, channels=setup.channels, cells_per_stage=1, image_size=setup.image_size
    )
    n = 2 * max(setup.recal_images, setup.val_images) + 64
    data = FakeData(num_train=n, num_test=16, size=setup.image_size, num_classes=10)
    data.setup(image_size=setup.image_size, in_channels=3)
    supernet = build_supernet(space).eval()
    ctx = MetricContext(space, supernet, data, TorchRunner())
    metric: Metric = (
        WaitMetric(setup.wait_ms)
        if setup.wait_ms > 0
        else FlatnessMetric(recal_images=setup.recal_images, val_images=setup.val_images)
    )
    rng = np.random.default_rng(seed)
    archs: dict[str, Architecture] = {}
    while len(archs) < setup.batch:
        a = space.sample(rng)
        archs[space.to_str(a)] = a
    return Evaluator(space, metric, [], ctx, seed), list(archs.values())


def ray_pool(local: Evaluator, workers: int) -> RayEvaluator:
    """A `RayEvaluator` of ``local``'s metric and context with ``workers`` workers."""
    cluster = RayCluster(RaySettings(num_workers=workers))
    return RayEvaluator(
        local.space, local.metric, local.costs, local.ctx, local.seed, cluster, TorchRunner
    )


def strip(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) used so far by this process and ``pids`` (Linux /proc)."""
    t = os.times()
    total = t.user + t.system
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def worker_pids(ev: Evaluator) -> list[int]:
    """The pids of a `RayEvaluator`'s workers (none for the sequential evaluator)."""
    if not isinstance(ev, RayEvaluator):
        return []
    import ray

    return [int(p) for p in ray.get([w.ready.remote() for w in ev.workers])]


def timed(
    ev: Evaluator, archs: list[Architecture], want: list[dict[str, Any]], pids: Sequence[int]
) -> tuple[float, float]:
    """``(seconds, cores this run kept busy)`` to evaluate ``archs`` (records checked)."""
    cpu0, start = cpu_seconds(pids), time.perf_counter()
    records = ev.evaluate(archs)
    seconds = time.perf_counter() - start
    if strip(records) != want:
        raise AssertionError(f"{type(ev).__name__} records differ from the sequential ones")
    return seconds, (cpu_seconds(pids) - cpu0) / seconds


def bench(setup: Setup, sides: dict[str, int], repeats: int) -> Timing:
    """Time ``sides`` (name -> workers; 0: sequential) on ``setup``, rotating their order."""
    local, archs = build(setup)
    want = strip(local.evaluate(archs))  # warm-up of the sequential side, and the reference
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        local.evaluate(archs)
        runs.append(time.perf_counter() - start)
    out = Timing(setup, local_ms=1000 * statistics.median(runs) / len(archs))
    evaluators = {name: local if w == 0 else ray_pool(local, w) for name, w in sides.items()}
    try:
        pids = {}
        for name, ev in evaluators.items():
            timed(ev, archs, want, [])  # warm-up: workers start, contexts are built
            pids[name] = worker_pids(ev)
        names = list(evaluators)
        for r in range(repeats):
            k = r % len(names)
            order = names[k:] + names[:k]
            if r % 2:
                order = order[::-1]
            for name in order:
                seconds, cores = timed(evaluators[name], archs, want, pids[name])
                out.times.setdefault(name, []).append(seconds)
                out.cores.setdefault(name, []).append(cores)
    finally:
        for ev in evaluators.values():
            if isinstance(ev, RayEvaluator):
                ev.close()
    return out


def idle_load(seconds: float = 3.0) -> float | None:
    """Cores other processes kept busy over ``seconds`` while this benchmark idles."""
    start = cpu_clock()
    time.sleep(seconds)
    return other_cores(start)


def machine() -> dict[str, str]:
    import ray

    return {
        "cpu": cpu_name(),
        "nproc": str(cpu_count()),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "python": platform.python_version(),
    }


def autogroup() -> bool:
    """Whether Linux shares the CPU between sessions (``sched_autogroup_enabled``)."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def fmt_load(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def report(
    scaling: Timing,
    overhead: Timing,
    wait: Timing,
    loads: tuple[float | None, float | None],
    argv: Sequence[str],
) -> str:
    info = machine()
    s, o = scaling, overhead
    ratio = s.rate("2 workers") / s.rate("1 worker")
    pairs = [a / b for a, b in zip(s.times["1 worker"], s.times["2 workers"], strict=True)]
    extra = o.median("1 worker") - o.median("sequential")
    cmd = "WANDB_MODE=disabled python benchmarks/ray_scaling.py " + shlex.join(argv)
    rows = [
        "| measurement | metric cost (sequential, ms/candidate) | batch | side | median batch (s) "
        "| evaluations/s | cores used by the run |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for t, label in ((s, "scaling"), (o, "overhead"), (wait, "concurrency check")):
        for side in t.times:
            rows.append(
                f"| {label}: {t.setup.name} | {t.local_ms:.1f} | {t.setup.batch} | {side} "
                f"| {t.median(side):.3f} | {t.rate(side):.2f} "
                f"| {statistics.median(t.cores[side]):.2f} |"
            )
    goal = "met" if ratio >= 1.8 else "not met"
    c1, c2 = (statistics.median(s.cores[k]) for k in ("1 worker", "2 workers"))
    per_core = (s.rate("2 workers") / c2) / (s.rate("1 worker") / c1)
    reading = (
        f"On the ~{s.local_ms:.0f} ms metric, 2 workers evaluate {s.rate('2 workers'):.2f} "
        f"candidates/s against 1 worker's {s.rate('1 worker'):.2f}: a ratio of {ratio:.2f} "
        f"(back-to-back pairs {min(pairs):.2f}-{max(pairs):.2f}); the goal of >= 1.8 is {goal}. "
        f"The run's processes (driver and workers) kept {c1:.2f} cores busy with 1 worker and "
        f"{c2:.2f} with 2; per core-second they got, 2 workers evaluate {per_core:.2f}x as many "
        "candidates as 1 (1.0 = no parallel overhead)."
    )
    if c2 < 1.5 * c1:
        reading += (
            " The second worker found no free core: other processes kept "
            f"{fmt_load(loads[0])} cores busy before the timed runs and {fmt_load(loads[1])} "
            "after"
            + (
                ", and Linux shares the CPU between sessions (autogroup, enabled here), so the "
                "run's processes together get one session's share however many they are"
                if autogroup()
                else ""
            )
            + ". The ratio then measures the machine's load, not Ray; rerun on an idle machine "
            "for the scaling itself."
        )
    else:
        reading += (
            f" Other processes kept {fmt_load(loads[0])} cores busy before the timed runs and "
            f"{fmt_load(loads[1])} after (this machine is shared)."
        )
    w_ratio = wait.rate("2 workers") / wait.rate("1 worker")
    reading += (
        f" With a metric that waits {wait.setup.wait_ms:.0f} ms without using the CPU, 2 "
        f"workers evaluate {w_ratio:.2f}x as many candidates per second as 1"
        + (
            ": the backend keeps both workers busy at once, so what a CPU-bound ratio below it "
            "lacks is CPU, not dispatch."
            if w_ratio >= 1.8
            else ": below 1.8 even without CPU work, so dispatch or start-up limits the scaling."
        )
    )
    reading += (
        f" On the ~{o.local_ms:.0f} ms metric a batch of {o.setup.batch} costs "
        f"{o.median('sequential'):.3f} s sequentially in the driver and "
        f"{o.median('1 worker'):.3f} s on one Ray worker: Ray adds {extra * 1000:.0f} ms per "
        f"batch ({extra * 1000 / o.setup.batch:.1f} ms per candidate: one actor call, the "
        "architecture and its record through Ray, and the per-batch check of the metric's "
        f"state); 2 workers take {o.median('2 workers'):.3f} s. The sides of each comparison ran "
        "back to back in alternating order, so load drifts hit both. Every side's records "
        "equal the sequential evaluator's. Worker start-up (a Python process importing torch "
        "and building its context) is not in these numbers: it is paid once per run, at the "
        "first batch."
    )
    return "\n".join(
        [
            START,
            "## Ray evaluation scaling (evaluator.backend=ray, 2 workers vs 1, and Ray's overhead)",
            "",
            f"- Date: {time.strftime('%Y-%m-%d')}",
            f"- Machine: {info['nproc']}-core CPU ({info['cpu']}), torch {info['torch']} "
            f"(1 thread per process), ray {info['ray']}, Python {info['python']}",
            f"- Command: `{cmd.strip()}`",
            "- Method: GeNAS flatness (`FlatnessMetric`, stds 0.001/0.003/0.006) on a "
            "random-init NB201 supernet with `FakeData` and `TorchRunner`; one local Ray "
            "(3 logical CPUs, so the 1- and 2-worker pools live side by side; each worker "
            "holds 1 CPU); one warm-up batch per side, then "
            f"{len(s.times['1 worker'])} timed batches per side in rotating, alternating order; "
            "medians. Evaluations/s = batch / median batch time.",
            "",
            *rows,
            "",
            reading,
            END,
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--repeats", type=int, default=None, help="timed batches per side (default 6)")
    p.add_argument("--batch", type=int, default=16, help="candidates per scaling batch")
    p.add_argument("--quick", action="store_true", help="tiny metric, 2 repeats (smoke check)")
    p.add_argument(
        "--write-results", action="store_true", help="replace this benchmark's section of --results"
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="the results file")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 6
    if args.repeats < 1 or args.batch < 2:
        p.error("--repeats must be >= 1 and --batch >= 2")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    import ray
    import ray.cloudpickle

    # workers rebuild WaitMetric from its pickle, wherever this module was imported from
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    torch.set_num_threads(1)
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=3,
            include_dashboard=False,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
        )
    try:
        heavy, light, waiting = setups(args.quick, args.batch)
        before = idle_load()
        scaling = bench(heavy, {"1 worker": 1, "2 workers": 2}, args.repeats)
        overhead = bench(
            light, {"sequential": 0, "1 worker": 1, "2 workers": 2}, max(args.repeats, 3)
        )
        wait = bench(waiting, {"1 worker": 1, "2 workers": 2}, args.repeats)
        after = idle_load()
    finally:
        if started:
            ray.shutdown()
    ratio = scaling.rate("2 workers") / scaling.rate("1 worker")
    extra = overhead.median("1 worker") - overhead.median("sequential")
    cores = {k: statistics.median(v) for k, v in scaling.cores.items()}
    print(
        f"scaling ({scaling.local_ms:.0f} ms/candidate, batch {heavy.batch}): "
        f"1 worker {scaling.rate('1 worker'):.2f}/s, 2 workers {scaling.rate('2 workers'):.2f}/s, "
        f"ratio {ratio:.2f}; cores used {cores['1 worker']:.2f} / {cores['2 workers']:.2f}"
    )
    print(
        f"overhead ({overhead.local_ms:.0f} ms/candidate, batch {light.batch}): sequential "
        f"{overhead.median('sequential'):.3f} s, 1 worker {overhead.median('1 worker'):.3f} s "
        f"(+{extra * 1000:.0f} ms/batch), 2 workers {overhead.median('2 workers'):.3f} s; "
        f"other load {fmt_load(before)} / {fmt_load(after)} cores"
    )
    w_ratio = wait.rate("2 workers") / wait.rate("1 worker")
    print(f"concurrency check ({waiting.wait_ms:.0f} ms wait): ratio {w_ratio:.2f}")
    if args.write_results:
        text = report(scaling, overhead, wait, (before, after), argv)
        write_section(args.results, START, END, text)
    return {
        "ratio": ratio,
        "cores": cores,
        "overhead_s": extra,
        "scaling": scaling,
        "overhead": overhead,
        "wait_ratio": w_ratio,
        "other_load": (before, after),
        "pid": os.getpid(),
    }


if __name__ == "__main__":
    main()
