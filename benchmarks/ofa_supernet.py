"""OFA MobileNetV3 supernet: Lightning training against a plain PyTorch loop, and extraction.

Training: the CPU-sized space (``space=ofa_mbv3_cpu``: width 0.35, resolutions 32..48) on the
digits at 48 px, SPOS training through the same `nasx.supernet.TrainingRecipe` on both sides
(same subnets, resolutions and batches per step: ``recipe.paths`` is a function of the seed and
the step), SGD Nesterov lr 0.025 with a per-epoch cosine. The ratio is Lightning's steps per
second over the plain loop's; both end with the same weights (the max-abs-diff column).
Extraction: seconds per ``supernet.extract(arch)`` (OFA's ``get_active_subnet``) over 20
random subnets, for the CPU-sized and the paper space (width 1.0, 192..256).

Run: ``python benchmarks/ofa_supernet.py --write-results`` (``--quick`` for a smoke check).
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import date
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import torch
from _results import cpu_clock, cpu_model, other_cores, write_section

from nasx.data import DigitsData, FakeData
from nasx.data.base import ImageData
from nasx.lit.supernet import SupernetLitModule
from nasx.search_space import OFAMobileNetV3Space
from nasx.supernet import TrainingRecipe, build_supernet

RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- ofa_supernet:start -->", "<!-- ofa_supernet:end -->"
SEED = 0


def recipe(epochs: int) -> TrainingRecipe:
    return TrainingRecipe(
        epochs,
        partial(torch.optim.SGD, lr=0.025, momentum=0.9, weight_decay=5e-4, nesterov=True),
        partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=epochs, eta_min=0.001),
    )


def data(quick: bool) -> ImageData:
    d: ImageData = (
        FakeData(num_train=64, num_test=16, size=48, num_classes=10, batch_size=32)
        if quick
        else DigitsData(batch_size=64)
    )
    d.setup(48, 3)
    return d


def fresh(space: OFAMobileNetV3Space) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return build_supernet(space)


def run_plain(space: OFAMobileNetV3Space, d: ImageData, epochs: int) -> tuple[int, float, dict]:
    net, rec = fresh(space), recipe(epochs)
    loader = d.train_loader(seed=SEED)
    conf = rec.configure_optimizers(net.parameters(), len(loader))
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    net.train()
    step, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            loss, _ = rec.loss(net, x, y, rec.paths(net, SEED, step))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        sched.step()
    return step, time.perf_counter() - t0, {k: v.clone() for k, v in net.state_dict().items()}


def run_lightning(space: OFAMobileNetV3Space, d: ImageData, epochs: int) -> tuple[int, float, dict]:
    module = SupernetLitModule(fresh(space), recipe(epochs), SEED)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    t0 = time.perf_counter()
    trainer.fit(module, train_dataloaders=d.train_loader(seed=SEED))
    state = {k: v.clone() for k, v in module.net.state_dict().items()}
    return trainer.global_step, time.perf_counter() - t0, state


def extraction_seconds(space: OFAMobileNetV3Space, n: int) -> float:
    supernet = fresh(space)
    rng = np.random.default_rng(SEED)
    archs = [space.sample(rng) for _ in range(n)]
    supernet.extract(archs[0])  # first-call costs
    t0 = time.perf_counter()
    for arch in archs:
        supernet.extract(arch)
    return (time.perf_counter() - t0) / n


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="tiny data, 1 epoch, 1 repeat")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per side (default 3)")
    p.add_argument("--write-results", action="store_true")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    epochs = 1 if args.quick else 3
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*|.*does not have many workers.*")
    cpu_space = OFAMobileNetV3Space(num_classes=10, width_mult=0.35, resolutions=(32, 48, 8))
    d = data(args.quick)
    run_plain(cpu_space, d, 1)  # warm-up for both sides
    clock = cpu_clock()
    plain, lit = [], []
    for _ in range(repeats):
        plain.append(run_plain(cpu_space, d, epochs))
        lit.append(run_lightning(cpu_space, d, epochs))
    load = other_cores(clock)
    diff = max(
        float((a[k].double() - b[k].double()).abs().max())
        for _, _, a in plain
        for _, _, b in lit
        for k in a
        if a[k].is_floating_point()
    )
    steps = plain[0][0]
    assert all(s == steps for s, _, _ in plain + lit), "the two sides ran different step counts"
    rate_plain = statistics.median(steps / t for _, t, _ in plain)
    rate_lit = statistics.median(steps / t for _, t, _ in lit)
    n = 3 if args.quick else 20
    paper = OFAMobileNetV3Space(num_classes=1000)
    out = {
        "steps": float(steps),
        "plain_steps_per_s": rate_plain,
        "lightning_steps_per_s": rate_lit,
        "ratio": rate_lit / rate_plain,
        "max_abs_diff": diff,
        "extract_cpu_s": extraction_seconds(cpu_space, n),
        "extract_paper_s": extraction_seconds(paper, n),
        "other_cores": math.nan if load is None else load,
    }
    print(out)
    if args.write_results:
        text = "\n".join(
            [
                START,
                "## OFA MobileNetV3 supernet: Lightning vs plain loop, extraction",
                "",
                f"`python benchmarks/ofa_supernet.py --write-results` on {date.today()}, "
                f"{cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
                f"other processes kept {out['other_cores']:.2f} cores busy meanwhile.",
                "",
                "| what | value |",
                "|---|---:|",
                f"| training steps per run (space=ofa_mbv3_cpu, 48 px digits, {epochs} "
                f"epochs, SPOS recipe) | {steps} |",
                f"| plain loop, steps/s (median of {repeats}) | {rate_plain:.2f} |",
                f"| Lightning, steps/s (median of {repeats}) | {rate_lit:.2f} |",
                f"| ratio Lightning / plain | {out['ratio']:.3f} |",
                f"| final weights, max abs difference | {diff:.1e} |",
                f"| extract one subnet, ofa_mbv3_cpu (s, mean of {n}) | "
                f"{out['extract_cpu_s']:.4f} |",
                f"| extract one subnet, ofa_mbv3 width 1.0 (s, mean of {n}) | "
                f"{out['extract_paper_s']:.4f} |",
                "",
                END,
            ]
        )
        write_section(args.results, START, END, text)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
