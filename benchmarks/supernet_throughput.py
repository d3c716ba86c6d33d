"""Supernet training throughput: nasx's Lightning module against a plain PyTorch loop.

Both sides train the same NB201 supernet (identical initial weights) on the same batches
(``ImageData.train_loader`` with the same seed) along the same sampled paths
(``TrainingRecipe.paths``: path = f(seed, step)), with the same optimiser and schedule as
``nasx.stages.supernet`` (SGD Nesterov, lr 0.025, momentum 0.9, weight decay 5e-4, cosine
annealing per epoch to 0.001), for the same number of epochs. The Lightning side is
``SupernetLitModule`` under a bare ``lightning.Trainer`` on the CPU; the plain side is the
straightforward ``loss = CE(net(x, path), y); zero_grad; backward; step`` loop, which takes
exactly ``len(loader)`` batches per epoch as Lightning does (see `run_plain` for why a bare
``for`` would shuffle the second and later epochs differently).

After one warm-up run of each, the runs are interleaved in alternating order (plain,
Lightning, Lightning, plain, ...) so that drifting machine load hits both alike; the medians
of steps/s are reported with their ratio (Lightning / plain), together with the largest
absolute difference between the final weights of the two sides, which shows that they did
the same work. Each run also records how many cores other processes kept busy meanwhile:
with torch's default of one thread per core, a busy machine slows every run many times
over, so such numbers are flagged.

Usage::

    WANDB_MODE=disabled .venv/bin/python benchmarks/supernet_throughput.py [--repeats 3]
        [--epochs E] [--quick] [--write-results]

``--write-results`` replaces this benchmark's section of ``benchmarks/RESULTS.md`` (between
its ``<!-- supernet_throughput:start -->`` and ``<!-- supernet_throughput:end -->`` markers)
and keeps the rest of the file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import torch
from _lightning_vs_plain import (
    BUSY,
    LoopTimer,
    Result,
    Run,
    machine,
    per_config_reading,
    quiet_lightning,
    table,
    time_sides,
)
from _results import cpu_clock, other_cores, write_section
from torch import nn

from nasx.data import DigitsData, FakeData
from nasx.data.base import ImageData
from nasx.lit.supernet import SupernetLitModule
from nasx.search_space.nb201 import NB201Space
from nasx.supernet import build_supernet
from nasx.supernet.recipe import TrainingRecipe

#: the optimiser and schedule of ``conf/supernet/spos.yaml`` (RLNAS NB201)
LR, MOMENTUM, WEIGHT_DECAY, NESTEROV, ETA_MIN = 0.025, 0.9, 5e-4, True, 0.001
SEED = 0
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- supernet_throughput:start -->", "<!-- supernet_throughput:end -->"
TITLE = "Supernet training throughput (nasx Lightning vs plain PyTorch)"


@dataclass(frozen=True)
class Config:
    """One benchmark setting: a search space, a dataset, and how long to train."""

    name: str
    make_data: Callable[[], ImageData]
    channels: int
    cells_per_stage: int
    image_size: int
    in_channels: int
    epochs: int


@dataclass(frozen=True)
class Setup:
    """Everything both sides share: the space, the prepared data, the initial weights."""

    space: NB201Space
    data: ImageData
    init_state: dict[str, torch.Tensor]
    steps_per_epoch: int


def configs(quick: bool) -> list[Config]:
    """The default CPU job's setting (``space=nb201_cpu dataset=digits``) and the paper network.

    Like the pipeline, the space takes 3 input channels; the grey digits are expanded to 3.
    """
    if quick:  # a smoke check: tiny networks, 1 step per epoch, 2 epochs (an epoch boundary)
        return [
            Config("digits, NB201 C=4 N=1, 8px (quick)", lambda: DigitsData(batch_size=512),
                   channels=4, cells_per_stage=1, image_size=8, in_channels=3, epochs=2),
            Config("fake-128, NB201 C=4 N=2, 8px (quick)",
                   lambda: FakeData(num_train=128, size=8, num_classes=10, batch_size=64),
                   channels=4, cells_per_stage=2, image_size=8, in_channels=3, epochs=2),
        ]  # fmt: skip
    return [
        Config("digits, NB201 C=16 N=1, 16px", lambda: DigitsData(),
               channels=16, cells_per_stage=1, image_size=16, in_channels=3, epochs=10),
        Config("fake-512, NB201 C=16 N=5, 32px",
               lambda: FakeData(num_train=512, size=32, num_classes=10),
               channels=16, cells_per_stage=5, image_size=32, in_channels=3, epochs=2),
    ]  # fmt: skip


def prepare(cfg: Config) -> Setup:
    data = cfg.make_data()
    space = NB201Space(
        num_classes=data.num_classes,
        channels=cfg.channels,
        cells_per_stage=cfg.cells_per_stage,
        image_size=cfg.image_size,
        in_channels=cfg.in_channels,
    )
    data.setup(cfg.image_size, cfg.in_channels)
    with torch.random.fork_rng():  # seeded init that leaves the caller's RNG state alone
        torch.manual_seed(SEED)
        init = snapshot(build_supernet(space))
    steps_per_epoch = len(data.train_loader(seed=SEED))
    return Setup(space, data, init, steps_per_epoch)


def fresh_net(setup: Setup) -> nn.Module:
    net = build_supernet(setup.space)
    net.load_state_dict(setup.init_state)
    return net


def snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def run_plain(setup: Setup, epochs: int) -> Run:
    net = fresh_net(setup)
    clock = cpu_clock()
    t0 = time.perf_counter()
    net.train()
    opt = torch.optim.SGD(
        net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=NESTEROV
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=ETA_MIN)
    loader = setup.data.train_loader(seed=SEED)
    n_batches = setup.steps_per_epoch
    step = 0
    t1 = time.perf_counter()
    for _ in range(epochs):
        # Lightning ends an epoch after len(loader) batches without the final next() that a for
        # loop makes; that call runs the tail of RandomSampler.__iter__, which draws one more
        # randperm from the loader's generator, so a bare ``for`` would shuffle epochs >= 2
        # differently. islice stops where Lightning does: same batches, same shuffles.
        for x, y in itertools.islice(loader, n_batches):
            path = net.sample_path(np.random.default_rng([SEED, step]))
            loss = nn.functional.cross_entropy(net(x, path), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        sched.step()
    t2 = time.perf_counter()
    return Run(step, t2 - t0, t2 - t1, snapshot(net), other_cores(clock))


def run_lightning(setup: Setup, epochs: int) -> Run:
    net = fresh_net(setup)
    timer = LoopTimer()
    clock = cpu_clock()
    t0 = time.perf_counter()
    recipe = TrainingRecipe(
        epochs,
        partial(
            torch.optim.SGD, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=NESTEROV
        ),
        partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=epochs, eta_min=ETA_MIN),
    )
    module = SupernetLitModule(net, recipe, SEED)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=setup.data.train_loader(seed=SEED))
    t2 = time.perf_counter()
    if trainer.global_step != epochs * setup.steps_per_epoch:
        raise RuntimeError(
            f"Lightning ran {trainer.global_step} steps, expected {epochs * setup.steps_per_epoch}"
        )
    return Run(
        trainer.global_step,
        t2 - t0,
        timer.end - timer.start,
        snapshot(module.net),
        other_cores(clock),
    )


def bench(cfg: Config, repeats: int, epochs: int | None, log: bool = True) -> Result:
    setup = prepare(cfg)
    e = cfg.epochs if epochs is None else epochs
    if log:
        print(f"{cfg.name}: {e} epochs x {setup.steps_per_epoch} steps", flush=True)
    return time_sides(cfg, setup, e, repeats, run_plain, run_lightning, log)


def interpretation(results: Sequence[Result]) -> str:
    parts, warning = per_config_reading(results)
    return (
        "Both sides did the same work (the same batches, paths and updates: the final weights "
        "agree to the max-abs-diff shown), so a difference in speed is Lightning's own cost: "
        + parts
        + ". Lightning adds a roughly constant time per step (loop hooks, the optimiser "
        "closure, the two `self.log` calls of `training_step` with their per-epoch "
        "aggregation, the data fetcher), whose share shrinks as steps get longer, and a "
        "one-off cost per `fit` that matters only for short runs." + warning
    )


def section(
    results: Sequence[Result],
    info: dict[str, str],
    command: str,
    repeats: int,
) -> str:
    return "\n".join(
        [
            START,
            f"## {TITLE}",
            "",
            f"- Date: {dt.date.today().isoformat()}",
            f"- Machine: {info['nproc']}-core CPU ({info['cpu']}), torch {info['torch']} "
            f"({info['threads']} threads, the default), lightning {info['lightning']}, "
            f"Python {info['python']}",
            f"- Command: `{command}`",
            f"- Method: one warm-up run of each side, then {repeats} interleaved repeats "
            "in alternating order (plain, Lightning, Lightning, plain, ...); medians of "
            "steps/s. *steps/s* counts the whole run (optimiser or Trainer construction to the end "
            "of training), *in-loop ratio* "
            "only the epoch loop (Lightning: `on_train_start` to `on_train_end`), *pairwise "
            "ratios* the spread of the back-to-back pairs, *other load* the median (largest) "
            "number of cores other processes kept busy during a timed run (`/proc/stat`). "
            "Same initial weights, batches (`train_loader(seed=0)`), paths "
            "(`TrainingRecipe.paths`, seed 0), "
            "SGD Nesterov lr 0.025, momentum 0.9, wd 5e-4, per-epoch cosine to 0.001.",
            "",
            table(results),
            "",
            interpretation(results),
            END,
        ]
    )


def write_results(text: str, path: Path) -> None:
    write_section(path, START, END, text)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs of each side, medians reported (default: 3; 1 with --quick)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs of every config (default: 10 on digits, 2 on fake-512)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny networks, 2 epochs of 1 step, 1 repeat (a smoke check in seconds)",
    )
    p.add_argument(
        "--write-results", action="store_true", help="replace this benchmark's section of --results"
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="the results file")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1 or (args.epochs is not None and args.epochs < 1):
        p.error("--repeats and --epochs must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    quiet_lightning()
    info = machine()
    repeats = args.repeats
    print(
        f"torch {info['torch']} ({torch.get_num_threads()} threads), "
        f"lightning {info['lightning']}, {info['nproc']} CPUs ({info['cpu']})"
    )
    results = []
    for cfg in configs(args.quick):
        r = bench(cfg, repeats, args.epochs)
        print(
            f"{cfg.name}: plain {r.rate('plain'):.2f} steps/s, lightning "
            f"{r.rate('lightning'):.2f} steps/s, ratio {r.ratio:.3f}, max abs diff "
            f"{r.max_abs_diff:.1e}",
            flush=True,
        )
        results.append(r)
    print()
    print(table(results))
    busy = [r.other_load[1] for r in results if r.other_load is not None]
    if busy and max(busy) > BUSY:
        print(f"\nwarning: other processes kept up to {max(busy):.1f} cores busy during some "
              "runs; the timings are noisy, rerun on a quiet machine")  # fmt: skip
    if args.write_results:
        shown = ["benchmarks/supernet_throughput.py", *(argv if argv is not None else sys.argv[1:])]
        command = "WANDB_MODE=disabled python " + shlex.join(shown)
        write_results(section(results, info, command, repeats), args.results)
        print(f"wrote {args.results}")
    return results


if __name__ == "__main__":
    main()
