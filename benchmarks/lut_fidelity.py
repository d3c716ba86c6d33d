"""How well a measured latency LUT predicts whole-network latency, per space (CPU).

For each space: build the LUT with `nasx.objective.measure_lut`, then time the whole
stand-alone network of each of N random architectures plus the space's extremes (one-sample
eval forwards, `torch.utils.benchmark`), all in the same run. Reports the LUT's Kendall tau
against the whole-network times and the mean ratio LUT / whole network (the glue a LUT leaves
out: sums, concatenations, allocation).

    python benchmarks/lut_fidelity.py [--quick] [--write-results]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _results import cpu_model, write_section
from scipy import stats
from torch.utils.benchmark import Timer

from nasx.objective import LatencyObjective, measure_lut
from nasx.search_space import Architecture, DartsSpace, NB201Space, SearchSpace

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- lut_fidelity:start -->", "<!-- lut_fidelity:end -->"


@dataclass
class Fidelity:
    space: str
    n_archs: int
    n_keys: int
    lut_seconds: float
    tau: float
    ratio: float
    lut_ms: tuple[float, float]
    real_ms: tuple[float, float]


def whole_network_ms(space: SearchSpace, arch: Architecture, min_run_time: float) -> float:
    """Median ms of one eval-mode forward of one sample through ``arch``'s network."""
    net = space.build_network(arch).eval()
    x = torch.zeros(1, *space.network_input_shape)
    timer = Timer("net(x)", globals={"net": net, "x": x}, num_threads=torch.get_num_threads())
    with torch.no_grad():
        return float(timer.blocked_autorange(min_run_time=min_run_time).median * 1e3)


def measure(name: str, space: SearchSpace, n: int, repeats: int, min_run_time: float) -> Fidelity:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lut.yaml"
        start = time.perf_counter()
        lut = measure_lut(space, path, repeats=repeats, number=10)
        seconds = time.perf_counter() - start
        latency = LatencyObjective(device=None, lut=str(path))
        rng = np.random.default_rng(0)
        archs = [space.sample(rng) for _ in range(n)] + space.extremes()
        pred = np.array([latency(a, space) for a in archs])
    real = np.array([whole_network_ms(space, a, min_run_time) for a in archs])
    return Fidelity(
        name,
        len(archs),
        len(lut),
        seconds,
        float(stats.kendalltau(pred, real)[0]),
        float(np.mean(pred / real)),
        (float(pred.min()), float(pred.max())),
        (float(real.min()), float(real.max())),
    )


def report(results: list[Fidelity], quick: bool) -> str:
    lines = [
        START,
        "## Latency LUT vs whole-network latency (CPU)",
        "",
        f"{dt.date.today().isoformat()}, {cpu_model()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}{' (--quick)' if quick else ''}. The LUT is built and every "
        "network timed in the same run (one sample, eval mode).",
        "",
        "| space | archs | LUT layers | LUT build (s) | Kendall tau | LUT / whole | "
        "LUT range (ms) | whole range (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.space} | {r.n_archs} | {r.n_keys} | {r.lut_seconds:.1f} | {r.tau:.3f} | "
            f"{r.ratio:.2f} | {r.lut_ms[0]:.2f}-{r.lut_ms[1]:.2f} | "
            f"{r.real_ms[0]:.2f}-{r.real_ms[1]:.2f} |"
        )
    lines += [
        "",
        "Command: `python benchmarks/lut_fidelity.py --write-results`.",
        END,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Fidelity]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny networks, few architectures")
    ap.add_argument("--write-results", action="store_true", help="rewrite RESULTS.md's section")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = ap.parse_args(argv)
    if args.quick:
        spaces: list[tuple[str, SearchSpace]] = [
            ("nb201 C4 N1 8px", NB201Space(channels=4, cells_per_stage=1, image_size=8)),
            (
                "darts C4 4 cells 8px",
                DartsSpace(
                    channels=4, layers=3, image_size=8, net_stem="cifar", net_channels=4,
                    net_layers=4, net_image_size=None,
                ),
            ),
        ]  # fmt: skip
        n, repeats, min_run = 4, 2, 0.05
    else:
        spaces = [
            ("nb201 C16 N5 32px", NB201Space()),
            ("darts ImageNet C48 14 cells 224px", DartsSpace(num_classes=1000)),
        ]
        n, repeats, min_run = 30, 20, 1.0
    results = []
    for name, space in spaces:
        r = measure(name, space, n, repeats, min_run)
        print(
            f"{name}: tau {r.tau:.3f}, LUT/whole {r.ratio:.2f} over {r.n_archs} archs "
            f"({r.n_keys} LUT layers, built in {r.lut_seconds:.1f} s)",
            flush=True,
        )
        results.append(r)
    if args.write_results:
        write_section(args.results, START, END, report(results, args.quick))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
