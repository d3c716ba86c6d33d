"""Cost of GeNAS's flatness (wlm) per candidate: nasx's FlatnessMetric vs the plain procedure.

Part 1 (cost). The same NB201 sub-network (``C=16 N=5`` 32 px supernet, random init), the same
images (``FakeData`` 32 px) and the same noise (the same ``torch.Generator`` seed on both
sides, read in the same order: one draw for the recalibration loader's seed, then the noise
of every parameter, level by level) are scored twice:

* *plain*: a straightforward re-implementation of GeNAS ``tester_wlm.py``: extract the
  sub-network, reset and recalibrate BN on ``ceil(850 / 64)`` training batches, ``deepcopy``
  the model, then for each level add cumulative Gaussian noise to every parameter and evaluate
  the valid images with a plain ``DataLoader`` (batches of 64 over a ``TensorDataset``),
  ``wlm = 1 / (poor + 1e-5)``;
* *nasx*: ``FlatnessMetric(...)(arch, ctx, generator)`` with ``TorchRunner`` (valid batches cut
  once on the device and reused, BN recalibrated once, in-place perturbation, no copies).

The two estimates must agree (asserted; the difference is printed). After one warm-up of each
side the runs are interleaved (plain, nasx, plain, ...) and medians are reported with their
ratio. The time one pass over the valid images spends in the data pipeline alone (no forward)
is timed for both loaders.

Part 2 (image count). A small NB201 supernet (``C=8 N=1`` at 16 px, chosen so the study fits
the 2-core budget) is trained briefly on a CIFAR-10 subset (the nasx npz; ``FakeData`` when
it is missing). For ~30 random architectures the per-image valid losses at every noise level
are recorded once on ``max`` images; wlm with ``n`` images is then exactly what
``FlatnessMetric(val_images=n)`` computes with the same generator (checked for one
architecture), because the noise does not depend on ``n``. Kendall's tau between wlm(n) and
wlm(max) over the architectures is reported, with the smallest ``n`` reaching tau >= 0.9, and,
as the noise floor, tau between wlm(max) under two different noise seeds.

Usage::

    WANDB_MODE=disabled .venv/bin/python benchmarks/flatness_cost.py [--quick] [--write-results]

``--write-results`` replaces this benchmark's section of ``benchmarks/RESULTS.md`` (between its
``<!-- flatness_cost:start -->`` and ``<!-- flatness_cost:end -->`` markers) and keeps the rest.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _results import cpu_clock, other_cores, write_section
from scipy.stats import kendalltau
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nasx.data import CIFAR10Data, FakeData
from nasx.data.base import ImageData
from nasx.metric import FlatnessMetric, MetricContext, TorchRunner
from nasx.metric.bn import recalibrate_bn
from nasx.metric.flatness import wlm_score
from nasx.search_space.base import Architecture
from nasx.search_space.nb201 import NB201Space
from nasx.supernet import build_supernet

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- flatness_cost:start -->", "<!-- flatness_cost:end -->"
CIFAR = Path("/work/shared/data/cifar10")
STDS = (0.001, 0.003, 0.006)  # GeNAS README
RECAL = 850  # GeNAS README
BATCH = 64  # GeNAS's loaders


# --- part 1: cost ----------------------------------------------------------------------------


def genas_wlm(
    space: NB201Space,
    supernet: nn.Module,
    arch: Architecture,
    data: ImageData,
    val_images: int,
    generator: torch.Generator,
) -> tuple[float, list[float]]:
    """The plain GeNAS procedure (``tester_wlm.py``), reading ``generator`` as nasx does."""
    model = supernet.extract(arch)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        for k, (x, _) in enumerate(data.train_loader(seed)):
            if k >= math.ceil(RECAL / BATCH):
                break
            model(x)
    model.eval()
    model_ = copy.deepcopy(model).eval()
    xv, yv = data.split("valid")
    loader = DataLoader(TensorDataset(xv[:val_images], yv[:val_images]), batch_size=BATCH)
    losses, prev = [], 0.0
    for s in STDS:
        with torch.no_grad():
            for p in model_.parameters():
                p.add_(torch.normal(0.0, s - prev, p.shape, generator=generator))
            prev = s
            batch = [float(F.cross_entropy(model_(x), y)) for x, y in loader]
        losses.append(sum(batch) / len(batch))
    poor = abs(losses[0] / STDS[0])
    for i in range(len(STDS) - 1):
        poor += abs((losses[i + 1] - losses[i]) / (STDS[i + 1] - STDS[i]))
    return 1.0 / (poor + 1e-5), losses


def cost(val_images: int, repeats: int, small_n: int | None) -> dict[str, object]:
    torch.manual_seed(0)
    space = NB201Space(num_classes=10, channels=16, cells_per_stage=5, image_size=32)
    data = FakeData(
        num_train=2 * max(val_images, 1024), num_test=16, size=32, num_classes=10,
        batch_size=BATCH, eval_batch_size=BATCH,
    )  # fmt: skip
    data.setup(32, 3)
    supernet = build_supernet(space).eval()
    arch = space.parse(
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "nor_conv_3x3~2|"
    )
    ctx = MetricContext(space, supernet, data, TorchRunner())
    metric = FlatnessMetric(STDS, RECAL, val_images)
    small = FlatnessMetric(STDS, RECAL, small_n) if small_n else None

    def run(side: str, seed: int) -> tuple[float, float, float | None]:
        g = torch.Generator().manual_seed(seed)
        clock = cpu_clock()
        t = time.perf_counter()
        if side == "plain":
            w = genas_wlm(space, supernet, arch, data, val_images, g)[0]
        elif side == "nasx":
            w = metric(arch, ctx, g)["flatness"]
        else:
            assert small is not None
            w = small(arch, ctx, g)["flatness"]
        return time.perf_counter() - t, w, other_cores(clock)

    sides = ["plain", "nasx"] + (["small"] if small else [])
    times: dict[str, list[float]] = {s: [] for s in sides}
    wlms: dict[str, list[float]] = {s: [] for s in sides}
    load: list[float] = []
    for s in ("plain", "nasx"):  # warm-up (builds nasx's device batches once)
        run(s, 0)
    for r in range(repeats):
        for s in sides:
            dt, w, o = run(s, 100 + r)
            times[s].append(dt)
            wlms[s].append(w)
            if o is not None:
                load.append(o)
            print(f"  repeat {r} {s:5s}: {dt:7.2f} s  wlm {w:.9g}", flush=True)
    diffs = [abs(a - b) / abs(a) for a, b in zip(wlms["plain"], wlms["nasx"], strict=True)]
    max_rel = max(diffs)
    assert max_rel < 1e-5, f"the estimates disagree: max relative difference {max_rel:.3g}"

    def data_pass(loader: DataLoader[Any]) -> float:
        t = time.perf_counter()
        for _ in range(3):
            for _x, _y in loader:
                pass
        return (time.perf_counter() - t) / 3

    xv, yv = data.split("valid")
    plain_loader = DataLoader(TensorDataset(xv[:val_images], yv[:val_images]), batch_size=BATCH)
    cached = metric._batches.loader(data, "valid", val_images, torch.device("cpu"))
    med = {s: statistics.median(v) for s, v in times.items()}
    return {
        "val_images": val_images,
        "repeats": repeats,
        "plain_s": med["plain"],
        "nasx_s": med["nasx"],
        "ratio": med["plain"] / med["nasx"],
        "pair_ratios": [a / b for a, b in zip(times["plain"], times["nasx"], strict=True)],
        "small_n": small_n,
        "small_s": med.get("small"),
        "max_rel_diff": max_rel,
        "max_abs_diff": max(abs(a - b) for a, b in zip(wlms["plain"], wlms["nasx"], strict=True)),
        "wlm": wlms["nasx"][0],
        "data_plain_ms": 1000 * data_pass(plain_loader),
        "data_nasx_ms": 1000 * data_pass(cached),
        "load": statistics.median(load) if load else None,
        "load_max": max(load) if load else None,
    }


# --- part 2: image count ---------------------------------------------------------------------


def study_data(max_images: int) -> tuple[ImageData, str]:
    npz = sorted(CIFAR.glob("*.npz")) if CIFAR.exists() else []
    if npz:
        data: ImageData = CIFAR10Data(
            root=str(CIFAR), limit_train=2 * max_images, augment=False, batch_size=BATCH,
            eval_batch_size=BATCH,
        )  # fmt: skip
        name = f"CIFAR-10 subset ({2 * max_images} train images, half valid)"
    else:
        data = FakeData(num_train=2 * max_images, size=16, num_classes=10, batch_size=BATCH)
        name = f"FakeData ({2 * max_images} images, half valid)"
    data.setup(16, 3)
    return data, name


def train_small(space: NB201Space, data: ImageData, epochs: int) -> nn.Module:
    torch.manual_seed(0)
    net = build_supernet(space)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    net.train()
    for epoch in range(epochs):
        for x, y in data.train_loader(seed=epoch):
            loss = F.cross_entropy(net(x, space.sample_path(rng)), y)
            opt.zero_grad()
            torch.autograd.backward(loss)
            opt.step()
    return net.eval()


@torch.no_grad()
def image_losses(
    space: NB201Space, supernet: nn.Module, arch: Architecture, data: ImageData, n: int, seed: int
) -> np.ndarray:
    """``[level, image]`` CE losses, with FlatnessMetric's generator reads and perturbations."""
    g = torch.Generator().manual_seed(seed)
    net = supernet.extract(arch)
    rseed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    recalibrate_bn(net, data.train_loader(rseed), RECAL, 0.1)
    xv, yv = (t[:n] for t in data.split("valid"))
    out, prev = [], 0.0
    for s in STDS:
        for p in net.parameters():
            p.add_(torch.normal(0.0, s - prev, p.shape, generator=g))
        prev = s
        out.append(
            torch.cat(
                [
                    F.cross_entropy(net(x), y, reduction="none")
                    for x, y in zip(torch.split(xv, BATCH), torch.split(yv, BATCH), strict=True)
                ]
            ).numpy()
        )
    return np.stack(out).astype(np.float64)


def wlm_at(losses: np.ndarray, n: int) -> float:
    """wlm on the first ``n`` images: per level, the mean over batches of each batch's mean."""
    per_level = [
        float(np.mean([b.mean() for b in np.split(row[:n], range(BATCH, n, BATCH))]))
        for row in losses
    ]
    return wlm_score(per_level, STDS)


def study(n_archs: int, counts: Sequence[int], epochs: int, noise_floor: bool) -> dict[str, object]:
    max_n = max(counts)
    space = NB201Space(num_classes=10, channels=8, cells_per_stage=1, image_size=16)
    data, data_name = study_data(max_n)
    t = time.perf_counter()
    supernet = train_small(space, data, epochs)
    train_s = time.perf_counter() - t
    rng = np.random.default_rng(1)
    archs: list[Architecture] = []
    while len(archs) < n_archs:
        a = space.sample(rng)
        if a not in archs:
            archs.append(a)
    t = time.perf_counter()
    table = [image_losses(space, supernet, a, data, max_n, 1000 + i) for i, a in enumerate(archs)]
    # check: the derived wlm equals FlatnessMetric's with the same generator seed
    ctx = MetricContext(space, supernet, data, TorchRunner())
    n_chk = min(counts)
    ref = FlatnessMetric(STDS, RECAL, n_chk)(archs[0], ctx, torch.Generator().manual_seed(1000))
    check = abs(ref["flatness"] - wlm_at(table[0], n_chk)) / ref["flatness"]
    assert check < 1e-4, f"derived wlm disagrees with FlatnessMetric: {check:.3g}"
    wlm = {n: [wlm_at(L, n) for L in table] for n in counts}
    taus = {n: float(kendalltau(wlm[n], wlm[max_n]).statistic) for n in counts}
    floor = None
    if noise_floor:
        other = [
            wlm_at(image_losses(space, supernet, a, data, max_n, 2000 + i), max_n)
            for i, a in enumerate(archs)
        ]
        floor = float(kendalltau(other, wlm[max_n]).statistic)
    ok = [n for n in sorted(counts) if taus[n] >= 0.9]
    return {
        "data": data_name,
        "archs": n_archs,
        "epochs": epochs,
        "train_s": train_s,
        "study_s": time.perf_counter() - t,
        "taus": taus,
        "smallest": ok[0] if ok else None,
        "noise_floor": floor,
        "check_rel": check,
        "max_n": max_n,
    }


# --- report ----------------------------------------------------------------------------------


def report(c: dict[str, object], s: dict[str, object], argv: Sequence[str]) -> str:
    cmd = "WANDB_MODE=disabled python benchmarks/flatness_cost.py " + " ".join(
        shlex.quote(a) for a in argv
    )
    cpu = f"{os.cpu_count()}-core CPU"
    load = f"{c['load']:.2f} ({c['load_max']:.2f})" if c["load"] is not None else "n/a"
    pr = c["pair_ratios"]
    assert isinstance(pr, list)
    lines = [
        START,
        "## GeNAS flatness (wlm) cost per candidate (nasx FlatnessMetric vs plain GeNAS)",
        "",
        "- Date: 2026-11-23",
        f"- Machine: {cpu} ({platform.machine()}), torch {torch.__version__} "
        f"(torch threads: {torch.get_num_threads()}), Python {platform.python_version()}",
        f"- Command: `{cmd}`",
        "- Method: NB201 C=16 N=5 32px sub-network of a random-init supernet, FakeData 32px, "
        f"stds {STDS}, {RECAL} recalibration images, {c['val_images']} valid images per level; "
        "same generator seed on both sides; one warm-up each, then "
        f"{c['repeats']} interleaved repeats, medians. *other load*: median (max) cores "
        "busy with other processes during the timed runs.",
        "",
        "| valid images | plain GeNAS s/cand | nasx s/cand | ratio (plain/nasx) | pairwise "
        "| max rel. wlm diff | data pass plain / nasx (ms) | other load (cores) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {c['val_images']} | {c['plain_s']:.2f} | {c['nasx_s']:.2f} | {c['ratio']:.3f} "
        f"| {min(pr):.2f}-{max(pr):.2f} | {c['max_rel_diff']:.1e} "
        f"| {c['data_plain_ms']:.1f} / {c['data_nasx_ms']:.1f} | {load} |",
        "",
        f"Both sides did the same work (identical wlm, max relative difference "
        f"{c['max_rel_diff']:.1e}). On this CPU the forward passes dominate: nasx's cached "
        f"on-device batches cut the data pipeline of one pass over the valid images from "
        f"{c['data_plain_ms']:.1f} ms to {c['data_nasx_ms']:.1f} ms and skip the deepcopy, "
        "which is far below the run-to-run noise of a candidate's cost, so the ratio is ~1 "
        "within the pairwise spread; the device-side savings (no per-image collation, no "
        "host-to-device copies of images and noise) matter on an accelerator, which this "
        "session could not measure.",
        "",
    ]
    if c["small_n"]:
        lines += [
            f"nasx with the study's smallest agreeing count ({c['small_n']} valid images): "
            f"{c['small_s']:.2f} s per candidate.",
            "",
        ]
    taus = s["taus"]
    assert isinstance(taus, dict)
    lines += [
        f"### Valid-image count vs ranking ({s['archs']} random NB201 archs)",
        "",
        f"Supernet NB201 C=8 N=1 16px (shrunk from C=16 N=5 32px to fit the 2-core budget), "
        f"trained {s['epochs']} epochs ({s['train_s']:.0f} s) on {s['data']}; one noise seed "
        f"per arch; wlm(n) derived from per-image losses on {s['max_n']} images (matches "
        f"FlatnessMetric(val_images=n) to {s['check_rel']:.1e}); {s['study_s']:.0f} s.",
        "",
        "| n | " + " | ".join(str(n) for n in taus) + " |",
        "|---|" + "---:|" * len(taus),
        f"| Kendall tau vs n={s['max_n']} | "
        + " | ".join(f"{t:.3f}" for t in taus.values())
        + " |",
        "",
        (
            f"Smallest n with tau >= 0.9: **{s['smallest']}**"
            + (
                f" (no smaller count agrees with n={s['max_n']}: at this scale, cutting the "
                "valid images changes the ranking, so nothing below the largest count studied "
                "is recommended; the full 25000 could not be studied on this budget)."
                if s["smallest"] == s["max_n"]
                else "."
            )
        )
        + (
            f" Noise floor: tau between wlm(n={s['max_n']}) under two noise seeds = "
            f"{s['noise_floor']:.3f}."
            if s["noise_floor"] is not None
            else ""
        ),
        END,
    ]
    return "\n".join(lines)


def write_results(text: str, path: Path) -> None:
    write_section(path, START, END, text)


def main(argv: Sequence[str] | None = None) -> tuple[dict[str, object], dict[str, object]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    p.add_argument("--val-images", type=int, default=None, help="part 1 (default 256)")
    p.add_argument("--repeats", type=int, default=None, help="part 1 (default 2)")
    p.add_argument("--archs", type=int, default=None, help="part 2 (default 30)")
    p.add_argument(
        "--counts", type=str, default=None, help="part 2, comma-separated (250,500,1000,2000)"
    )
    p.add_argument("--epochs", type=int, default=None, help="part 2 training (default 3)")
    p.add_argument("--no-noise-floor", action="store_true")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core "
        "machine 2 threads ran 3-15x slower under other processes' load)",
    )
    p.add_argument("--write-results", action="store_true")
    p.add_argument("--results", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    q = a.quick
    counts = [int(v) for v in (a.counts or ("64,128" if q else "250,500,1000,2000")).split(",")]
    print("part 2: image-count study", flush=True)
    s = study(
        a.archs or (5 if q else 30), counts, a.epochs or (1 if q else 3), not a.no_noise_floor
    )
    print(f"  taus {s['taus']}, smallest {s['smallest']}, floor {s['noise_floor']}", flush=True)
    smallest = s["smallest"]
    print("part 1: cost per candidate", flush=True)
    c = cost(
        a.val_images or (64 if q else 256),
        a.repeats or (1 if q else 2),
        smallest
        if isinstance(smallest, int) and smallest < (a.val_images or 256) and not q
        else None,
    )
    text = report(c, s, argv)
    print(text)
    if a.write_results:
        write_results(text, a.results)
    return c, s


if __name__ == "__main__":
    main()
