"""Early-exit latency: ``EarlyExitNetwork.infer`` against its backbone alone, batch size 1, CPU.

An OFA MobileNetV3 subnet (one random architecture, seed 0) at width 1.0 and 0.35, 32 px, 10
classes, with EDANAS exits (score margin) after stages 1-4, NACHOS's adaptive heads. The
weights are random: the backbone's BN statistics are recalibrated on random images (so its
features have unit scale) and the heads are Kaiming-initialised (PyTorch's default init makes
their margins tie to 1e-8). Untrained heads give arbitrary margins, so the thresholds are taken
from the timed images themselves: a quarter of the images leave at exit 1 and a third of those
still inside at each later exit, about half by the second exit. The exit ratios, CNAS's
``avg_macs`` and the MACs `infer` actually executes per image are reported beside the times.

Timing: wall time per image of ``infer(x)`` and of ``backbone(x)`` (OFA's static network) over
the same images one at a time under ``no_grad``, after one warm-up pass of each; the passes are
interleaved (backbone, EENN, backbone, ...) so that drifting load hits both alike, and the
medians over the repeats are reported with their ratio and the spread of the back-to-back
pairs. *Other load* is the median (largest) number of cores other processes kept busy during a
timed pass (``/proc/stat``). One torch thread by default: at batch size 1 these networks have
too little work per op for intra-op parallelism to pay, and on a shared 2-core machine a second
thread waiting on a busy core slows every op several times over.

Run: ``WANDB_MODE=disabled python benchmarks/early_exit_latency.py --write-results``
(``--quick`` for a smoke check).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import torch
from _results import cpu_clock, cpu_model, other_cores, write_section
from torch import nn

from nasx.early_exit import EarlyExitNetwork, avg_macs, exit_ratios, score_margin
from nasx.objective.profile import count_macs
from nasx.search_space import OFAMobileNetV3Space
from nasx.supernet import build_supernet

RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- early_exit_latency:start -->", "<!-- early_exit_latency:end -->"
SEED = 0
SHAPE = (3, 32, 32)
EXIT_STAGES = (1, 2, 3, 4)
#: share of the images still inside that leave at each intermediate exit
LEAVE = (0.25, 1 / 3, 1 / 3, 1 / 3)
#: cores kept busy by other processes above which a pass counts as disturbed
BUSY = 0.25


@dataclass(frozen=True)
class Result:
    """One width's setting, costs and timed passes (seconds per image)."""

    width: float
    depths: list[int]
    backbone_macs: float
    exit_costs: list[float]
    ratios: list[float]
    cnas_avg_macs: float
    executed_macs: float
    backbone_s: list[float]
    eenn_s: list[float]
    loads: list[float | None]

    @property
    def ratio(self) -> float:
        """EENN / backbone, medians."""
        return statistics.median(self.eenn_s) / statistics.median(self.backbone_s)

    @property
    def pair_ratios(self) -> list[float]:
        return [e / b for e, b in zip(self.eenn_s, self.backbone_s, strict=True)]

    @property
    def other_load(self) -> tuple[float, float] | None:
        known = [v for v in self.loads if v is not None]
        return (statistics.median(known), max(known)) if known else None


def backbone_for(width: float) -> tuple[nn.Module, list[int]]:
    """A random subnet (seed 0) with BN recalibrated on random images, in eval mode."""
    space = OFAMobileNetV3Space(num_classes=10, width_mult=width, resolutions=(32, 32, 1))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        supernet = build_supernet(space)
        arch = space.sample(np.random.default_rng(SEED))
        net = supernet.extract(arch)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # a cumulative average over the calibration batch
        with torch.no_grad():
            net(torch.randn(128, *SHAPE))
    return net.eval(), list(space.subnet(arch)["d"])


def early_exit_net(backbone: nn.Module, depths: list[int]) -> EarlyExitNetwork:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        net = EarlyExitNetwork(backbone, depths, EXIT_STAGES, 10, False, SHAPE)
        for head in net.heads[:-1]:
            for m in head.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)
    return net.eval()


def data_thresholds(net: EarlyExitNetwork, images: torch.Tensor) -> list[float]:
    """Margins splitting the images still inside at each exit by `LEAVE`."""
    with torch.no_grad():
        outs = net(images)
    inside = torch.ones(len(images), dtype=torch.bool)
    thresholds = []
    for b, share in enumerate(LEAVE):
        margins = score_margin(outs[b])
        t = float(torch.quantile(margins[inside], 1.0 - share))
        thresholds.append(t)
        inside &= margins < t
    return thresholds


def per_image_s(fn: Callable[[torch.Tensor], object], images: torch.Tensor) -> float:
    """Mean wall seconds of ``fn`` on each image alone."""
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(len(images)):
            fn(images[i : i + 1])
    return (time.perf_counter() - t0) / len(images)


def bench(width: float, n_images: int, repeats: int, log: bool = True) -> Result:
    backbone, depths = backbone_for(width)
    net = early_exit_net(backbone, depths)
    images = torch.randn(n_images, *SHAPE, generator=torch.Generator().manual_seed(SEED + 1))
    net.thresholds = data_thresholds(net, images)
    counted = net.infer(images, count_macs=True)
    assert counted.macs is not None
    ratios = exit_ratios(counted.exits, net.n_exits)
    executed = float(counted.macs.mean())
    if abs(executed - avg_macs(ratios, net.inference_costs)) > 1e-6 * executed:
        raise RuntimeError("infer's counted MACs disagree with its per-exit costs")
    sides: dict[str, Callable[[torch.Tensor], object]] = {"backbone": backbone, "eenn": net.infer}
    for fn in sides.values():  # warm-up: allocator, oneDNN primitives
        per_image_s(fn, images)
    times: dict[str, list[float]] = {"backbone": [], "eenn": []}
    loads: list[float | None] = []
    for _ in range(repeats):
        for side, fn in sides.items():
            clock = cpu_clock()
            times[side].append(per_image_s(fn, images))
            loads.append(other_cores(clock))
        if log:
            print(f"  width {width}: backbone {1e3 * times['backbone'][-1]:.3f} ms/img, "
                  f"EENN {1e3 * times['eenn'][-1]:.3f} ms/img", flush=True)  # fmt: skip
    return Result(
        width=width,
        depths=depths,
        backbone_macs=count_macs(backbone, SHAPE),
        exit_costs=net.exit_costs,
        ratios=ratios,
        cnas_avg_macs=avg_macs(ratios, net.exit_costs),
        executed_macs=executed,
        backbone_s=times["backbone"],
        eenn_s=times["eenn"],
        loads=loads,
    )


def table(results: Sequence[Result]) -> str:
    rows = [
        "| width | depths | backbone MACs (M) | exit costs (M) | exit ratios "
        "| CNAS avg_macs (M) | executed MACs/img (M) | backbone ms/img | EENN ms/img "
        "| ratio (EENN/backbone) | pairwise ratios | other load (cores) |",
        "|---:|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        load = r.other_load
        shown = "n/a" if load is None else f"{load[0]:.2f} ({load[1]:.2f})"
        pairs = r.pair_ratios
        rows.append(
            f"| {r.width} | {r.depths} | {r.backbone_macs:.2f} "
            f"| {' / '.join(f'{c:.2f}' for c in r.exit_costs)} "
            f"| {' / '.join(f'{w:.2f}' for w in r.ratios)} | {r.cnas_avg_macs:.2f} "
            f"| {r.executed_macs:.2f} | {1e3 * statistics.median(r.backbone_s):.3f} "
            f"| {1e3 * statistics.median(r.eenn_s):.3f} | {r.ratio:.3f} "
            f"| {min(pairs):.2f}-{max(pairs):.2f} | {shown} |"
        )
    return "\n".join(rows)


def section(
    results: Sequence[Result], command: str, n_images: int, repeats: int, threads: int
) -> str:
    return "\n".join(
        [
            START,
            "## Early-exit latency (EENN `infer` vs its backbone, batch size 1, CPU)",
            "",
            f"`{command}` on {date.today()}, {cpu_model()}, torch {torch.__version__}, "
            f"{threads} torch thread(s).",
            "",
            f"OFA MobileNetV3 subnet (random architecture, seed 0), 32 px, 10 classes, EDANAS "
            f"margin exits after stages 1-4 with NACHOS's adaptive heads; random weights (BN "
            f"recalibrated on random images, Kaiming heads) and thresholds taken from the "
            f"{n_images} timed random images (a quarter leave at exit 1, a third of those "
            f"inside at each later exit). Wall time per image, one image at a time, median "
            f"of {repeats} interleaved passes after a warm-up. *exit costs*: CNAS's per-exit "
            "cost (backbone to the exit + its head); *CNAS avg_macs*: their mean weighted by "
            "the exit ratios; *executed MACs/img*: what `infer(count_macs=True)` counted, "
            "which adds the heads of the exits a sample passed.",
            "",
            table(results),
            "",
            interpretation(results),
            END,
        ]
    )


def interpretation(results: Sequence[Result]) -> str:
    parts = [
        f"at width {r.width} the EENN takes {100 * r.ratio:.0f}% of the backbone's time per "
        f"image while executing {100 * r.executed_macs / r.backbone_macs:.0f}% of its MACs "
        f"(CNAS's avg_macs says {100 * r.cnas_avg_macs / r.backbone_macs:.0f}%)"
        for r in results
    ]
    busy = [r.other_load[1] for r in results if r.other_load is not None]
    warning = (
        f" Other processes kept up to {max(busy):.1f} cores busy during some passes, so those "
        "times are noisy."
        if busy and max(busy) > BUSY
        else ""
    )
    return (
        "; ".join(parts)[:1].upper()
        + "; ".join(parts)[1:]
        + ". At 32 px a batch-1 forward of these networks is mostly per-module Python and "
        "dispatch overhead, so the time follows the number of blocks a sample runs more than "
        "its MACs; the executed MACs exceed CNAS's avg_macs by the heads of the exits a "
        "sample passed without leaving, and where the first exit alone costs more than the "
        "whole backbone (width 0.35: its head reads 8 channels at 8x8, which NACHOS's rule "
        "may pool by 2 only) the EENN executes more MACs than the backbone." + warning
    )


def main(argv: Sequence[str] | None = None) -> list[Result]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--images", type=int, default=None, help="timed images (default 300)")
    p.add_argument("--repeats", type=int, default=None, help="timed passes per side (default 9)")
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1; see the docstring)"
    )
    p.add_argument("--quick", action="store_true", help="12 images, 1 repeat (a smoke check)")
    p.add_argument("--write-results", action="store_true")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    n_images = args.images or (12 if args.quick else 300)
    repeats = args.repeats or (1 if args.quick else 9)
    if n_images < 4 or repeats < 1:
        p.error("--images must be >= 4 and --repeats >= 1")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        print(f"torch {torch.__version__} ({args.threads} threads), {cpu_model()}")
        results = [bench(width, n_images, repeats) for width in (1.0, 0.35)]
    finally:
        torch.set_num_threads(threads)
    print()
    print(table(results))
    if args.write_results:
        shown = ["benchmarks/early_exit_latency.py", *(argv if argv is not None else sys.argv[1:])]
        command = "WANDB_MODE=disabled python " + shlex.join(shown)
        write_section(
            args.results, START, END, section(results, command, n_images, repeats, args.threads)
        )
        print(f"wrote {args.results}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
