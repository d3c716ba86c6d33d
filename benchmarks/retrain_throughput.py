"""Retraining throughput: nasx's Lightning retrain module against a plain PyTorch loop.

Both sides retrain the same stand-alone network, built as the retrain stage builds it
(``torch.manual_seed(seed)`` then ``space.build_retrain_network(arch, auxiliary=aux_weight >
0)``, identical initial weights), on the same batches (``ImageData.train_loader`` with the
same seed: the sampler's permutation is fixed by ``(seed, epoch)``), with the same recipe: SGD
with a per-epoch cosine to 0, gradient-norm clipping at 5 and, per configuration, label
smoothing, cutout, DARTS's auxiliary head with weight 0.4, drop path rising linearly per
epoch and an exponential moving average of the weights (the DARTS CIFAR recipe,
``retrain=darts_cifar``, at a CPU size; see `configs`). Every step reseeds torch's global
generator from ``(seed, step)`` (`RetrainRecipe.step_seed`), so the crops, flips, cutout
squares and drop-path masks agree too.

The Lightning side is the retrain stage's own ``RetrainLitModule`` around a `RetrainRecipe`
under a ``lightning.Trainer`` with the CPU preset's settings (``conf/trainer/cpu.yaml``) and
the recipe's gradient clipping, as ``RetrainStage._fit`` builds it, less what is not training
throughput: no validation loader, no per-epoch checkpoint, no logger or progress bar. The
plain side writes the recipe out by hand: ``torch.manual_seed(step seed)``; set
``net.drop_path_prob``; augment; ``loss = CE(logits) + 0.4 * CE(aux logits)`` with label
smoothing; ``zero_grad``; ``backward``; ``clip_grad_norm_(5)``; ``step``; update the EMA;
``scheduler.step()`` after each epoch. It shares with the Lightning side only what is plain
PyTorch already: the batch augmentation (`nasx.retrain.augment.BatchAugment`, whose random
draws must be the same ones) and torch's ``AveragedModel`` for the EMA.

After one warm-up run of each, the runs are interleaved in alternating order (plain,
Lightning, Lightning, plain, plain, ...) so that drifting machine load or speed hits both
alike; the medians of steps/s are reported with their ratio (Lightning / plain), together with
the largest absolute difference between the final weights (and EMA weights) of the two sides,
which shows that they did the same work. Each run also records how many cores other processes
kept busy meanwhile: with torch's default of one thread per core, a busy machine slows every
run many times over, so such numbers are flagged.

Usage::

    WANDB_MODE=disabled .venv/bin/python benchmarks/retrain_throughput.py [--repeats 5]
        [--epochs E] [--quick] [--write-results]

``--write-results`` replaces this benchmark's section of ``benchmarks/RESULTS.md`` (between
its ``<!-- retrain_throughput:start -->`` and ``<!-- retrain_throughput:end -->`` markers)
and keeps the rest of the file.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from nasx.data import DigitsData, FakeData
from nasx.data.base import ImageData
from nasx.lit.retrain import RetrainLitModule
from nasx.retrain.augment import BatchAugment
from nasx.retrain.recipe import RetrainRecipe
from nasx.search_space.base import Architecture, SearchSpace
from nasx.search_space.darts import DartsSpace
from nasx.search_space.nb201 import NB201Space

SEED = 0
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- retrain_throughput:start -->", "<!-- retrain_throughput:end -->"
TITLE = "Retraining throughput (nasx Lightning retrain module vs plain PyTorch)"
#: the best NB201 cell on CIFAR-10 (NAS-Bench-201's optimum)
NB201_BEST = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)


@dataclass(frozen=True)
class Recipe:
    """The training recipe as plain values (both sides read it; Lightning via `RetrainRecipe`).

    ``conf/retrain/darts_cifar.yaml``'s settings unless a configuration says otherwise.
    """

    lr: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4
    eta_min: float = 0.0
    grad_clip: float = 5.0
    label_smoothing: float = 0.0
    aux_weight: float = 0.0
    drop_path: float = 0.0
    drop_path_schedule: str = "constant"  # or linear_epoch (DARTS)
    ema_decay: float | None = None
    augment: str = "cutout"
    cutout_size: int = 16

    def describe(self) -> str:
        parts = [
            f"SGD lr {self.lr:g} momentum {self.momentum:g} wd {self.weight_decay:g}, "
            f"per-epoch cosine to {self.eta_min:g}, grad-norm clip {self.grad_clip:g}",
            f"augment {self.augment} ({self.cutout_size} px)",
        ]
        if self.label_smoothing:
            parts.append(f"label smoothing {self.label_smoothing:g}")
        if self.aux_weight:
            parts.append(f"aux head {self.aux_weight:g}")
        if self.drop_path:
            parts.append(f"drop path {self.drop_path:g} {self.drop_path_schedule}")
        if self.ema_decay is not None:
            parts.append(f"EMA {self.ema_decay:g}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Config:
    """One benchmark setting: a space and architecture, a dataset, a recipe, a length."""

    name: str
    make_data: Callable[[], ImageData]
    make_space: Callable[[int], SearchSpace]  # num_classes -> space
    arch: str
    recipe: Recipe
    epochs: int


@dataclass(frozen=True)
class Setup:
    """Everything both sides share: the network's recipe, the prepared data, initial weights."""

    space: SearchSpace
    arch: Architecture
    data: ImageData
    recipe: Recipe
    init_state: dict[str, torch.Tensor]
    input_size: int
    steps_per_epoch: int


def configs(quick: bool) -> list[Config]:
    """The default CPU job's NB201 network on digits, and a small DARTS CIFAR network.

    The NB201 network (``space=nb201_cpu``, C=16 N=1 at 16 px; grey digits expanded to 3
    channels) takes the DARTS recipe with cutout scaled to the image (8 px at 16 px, as 16 at
    32), label smoothing 0.1 (RLNAS) and an EMA of the weights (0.999; no paper's recipe,
    here to time the shell's EMA path); NB201 networks have neither an auxiliary head nor drop
    path. The DARTS network is ``retrain=darts_cifar`` (auxiliary head 0.4, drop path 0.2
    rising linearly per epoch, cutout 16, batch 96) on DARTS V2's cell at 32 px with the CIFAR
    stem, shrunk from C=36, 20 cells to C=8, 8 cells for two CPU cores.
    """
    nb201 = Recipe(label_smoothing=0.1, ema_decay=0.999, cutout_size=8)
    darts = Recipe(aux_weight=0.4, drop_path=0.2, drop_path_schedule="linear_epoch")
    if quick:  # a smoke check: tiny networks, 1 step per epoch, 2 epochs (an epoch boundary)
        return [
            Config("digits, NB201 C=4 N=1, 8px (quick)", lambda: DigitsData(batch_size=512),
                   lambda k: NB201Space(k, channels=4, cells_per_stage=1, image_size=8),
                   NB201_BEST, Recipe(label_smoothing=0.1, ema_decay=0.999, cutout_size=4),
                   epochs=2),
            Config("fake-128, DARTS V2 C=4 L=3 aux, 8px (quick)",
                   lambda: FakeData(num_train=128, size=8, num_classes=10, batch_size=64),
                   lambda k: darts_space(k, channels=4, layers=3, image_size=8),
                   "DARTS_V2", Recipe(aux_weight=0.4, drop_path=0.2,
                                      drop_path_schedule="linear_epoch", cutout_size=4),
                   epochs=2),
        ]  # fmt: skip
    return [
        Config("digits, NB201 C=16 N=1, 16px", lambda: DigitsData(batch_size=64),
               lambda k: NB201Space(k, channels=16, cells_per_stage=1, image_size=16),
               NB201_BEST, nb201, epochs=15),
        Config("fake-1536, DARTS V2 C=8 L=8 aux, 32px",
               lambda: FakeData(num_train=1536, size=32, num_classes=10, batch_size=96),
               lambda k: darts_space(k, channels=8, layers=8, image_size=32),
               "DARTS_V2", darts, epochs=3),
    ]  # fmt: skip


def darts_space(num_classes: int, channels: int, layers: int, image_size: int) -> DartsSpace:
    """A DARTS space whose retrain network is the CIFAR network of this size."""
    return DartsSpace(
        num_classes,
        image_size=image_size,
        net_stem="cifar",
        net_channels=channels,
        net_layers=layers,
        net_image_size=None,
    )


def prepare(cfg: Config) -> Setup:
    data = cfg.make_data()
    space = cfg.make_space(data.num_classes)
    arch = space.parse(cfg.arch)
    channels, size = space.input_shape_of(arch)[:2]
    data.setup(size, channels)
    with torch.random.fork_rng(devices=[]):  # as the stage: seeded init, caller's RNG kept
        torch.manual_seed(SEED)
        init = snapshot(build_net(space, arch, cfg.recipe))
    steps_per_epoch = len(data.train_loader(seed=SEED))
    return Setup(space, arch, data, cfg.recipe, init, size, steps_per_epoch)


def build_net(space: SearchSpace, arch: Architecture, recipe: Recipe) -> nn.Module:
    return space.build_retrain_network(arch, auxiliary=recipe.aux_weight > 0)


def fresh_net(setup: Setup) -> nn.Module:
    net = build_net(setup.space, setup.arch, setup.recipe)
    net.load_state_dict(setup.init_state)
    return net


def snapshot(net: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().clone() for k, v in net.state_dict().items()}


def augmenter(setup: Setup) -> BatchAugment:
    data = setup.data
    return BatchAugment(
        setup.recipe.augment,
        getattr(data, "mean", None),
        getattr(data, "std", None),
        setup.recipe.cutout_size,
    )


def run_plain(setup: Setup, epochs: int) -> Run:
    rec = setup.recipe
    clock = cpu_clock()
    t0 = time.perf_counter()
    net = fresh_net(setup)
    ema = None
    if rec.ema_decay is not None:
        ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(rec.ema_decay), use_buffers=True)
        ema.requires_grad_(False)
    augment = augmenter(setup)
    drop_path = rec.drop_path > 0 and isinstance(getattr(net, "drop_path_prob", None), float)
    net.train()
    opt = torch.optim.SGD(
        net.parameters(), lr=rec.lr, momentum=rec.momentum, weight_decay=rec.weight_decay
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=rec.eta_min)
    loader = setup.data.train_loader(seed=SEED)
    step = 0
    t1 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # as the stage: reseeding per step stays inside
        for epoch in range(epochs):
            loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]  # as Lightning does
            for x, y in loader:
                torch.manual_seed(step_seed(SEED, step))
                if drop_path:
                    prob = drop_path_at(rec, epoch, step, epochs, len(loader))
                    setattr(net, "drop_path_prob", prob)  # noqa: B010  # DARTS's attribute
                out = net(augment(x))  # the batches are at the network's resolution already
                logits, aux = out if isinstance(out, tuple) else (out, None)
                loss = nn.functional.cross_entropy(logits, y, label_smoothing=rec.label_smoothing)
                if aux is not None:
                    aux_loss = nn.functional.cross_entropy(
                        aux, y, label_smoothing=rec.label_smoothing
                    )
                    loss = loss + rec.aux_weight * aux_loss
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), rec.grad_clip)
                opt.step()
                if ema is not None:
                    ema.update_parameters(net)
                step += 1
            sched.step()
    t2 = time.perf_counter()
    state = snapshot(net, "net.")
    if ema is not None:
        state |= snapshot(ema, "ema.")
    return Run(step, t2 - t0, t2 - t1, state, other_cores(clock))


def step_seed(seed: int, step: int) -> int:
    """The torch seed of one step (rank 0), as `RetrainRecipe.step_seed` defines it."""
    return int(np.random.SeedSequence([seed, step, 0]).generate_state(1)[0])


def drop_path_at(rec: Recipe, epoch: int, step: int, epochs: int, steps_per_epoch: int) -> float:
    if rec.drop_path_schedule == "linear_epoch":  # DARTS: drop_path_prob * epoch / epochs
        return rec.drop_path * epoch / epochs
    if rec.drop_path_schedule == "linear_step":  # NAG: over all steps
        return rec.drop_path * step / (epochs * steps_per_epoch)
    return rec.drop_path


def retrain_recipe(rec: Recipe, epochs: int) -> RetrainRecipe:
    """The `RetrainRecipe` the retrain stage would build from these settings."""
    return RetrainRecipe(
        epochs,
        partial(torch.optim.SGD, lr=rec.lr, momentum=rec.momentum, weight_decay=rec.weight_decay),
        partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=epochs, eta_min=rec.eta_min),
        scheduler_interval="epoch",
        grad_clip=rec.grad_clip,
        grad_clip_algorithm="norm",
        label_smoothing=rec.label_smoothing,
        aux_weight=rec.aux_weight,
        ema_decay=rec.ema_decay,
        drop_path=rec.drop_path,
        drop_path_schedule=rec.drop_path_schedule,
        augment=rec.augment,
        cutout_size=rec.cutout_size,
        val_split=None,
    )


def run_lightning(setup: Setup, epochs: int) -> Run:
    timer = LoopTimer()
    clock = cpu_clock()
    t0 = time.perf_counter()
    net = fresh_net(setup)
    recipe = retrain_recipe(setup.recipe, epochs)
    data = setup.data
    module = RetrainLitModule(
        net,
        recipe,
        SEED,
        "bench",
        recipe.batch_augment(getattr(data, "mean", None), getattr(data, "std", None)),
        setup.input_size,
    )
    trainer = L.Trainer(  # conf/trainer/cpu.yaml and RunContext.trainer, less the outputs
        accelerator="cpu",
        devices=1,
        strategy="auto",
        precision="32-true",
        log_every_n_steps=10,
        num_sanity_val_steps=0,
        deterministic=False,
        max_epochs=epochs,
        gradient_clip_val=recipe.grad_clip,
        gradient_clip_algorithm=recipe.grad_clip_algorithm,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    with torch.random.fork_rng(devices=[]):  # RetrainStage._fit
        trainer.fit(module, train_dataloaders=data.train_loader(seed=SEED))
    t2 = time.perf_counter()
    if trainer.global_step != epochs * setup.steps_per_epoch:
        raise RuntimeError(
            f"Lightning ran {trainer.global_step} steps, expected {epochs * setup.steps_per_epoch}"
        )
    state = snapshot(module.net, "net.")
    if module.ema is not None:
        state |= snapshot(module.ema, "ema.")
    return Run(trainer.global_step, t2 - t0, timer.end - timer.start, state, other_cores(clock))


def bench(cfg: Config, repeats: int, epochs: int | None, log: bool = True) -> Result:
    setup = prepare(cfg)
    e = cfg.epochs if epochs is None else epochs
    if log:
        print(f"{cfg.name}: {e} epochs x {setup.steps_per_epoch} steps", flush=True)
    return time_sides(cfg, setup, e, repeats, run_plain, run_lightning, log)


def interpretation(results: Sequence[Result]) -> str:
    parts, warning = per_config_reading(results)
    goal = all(r.ratio >= 0.95 for r in results)
    return (
        "Both sides did the same work (the same batches, augmentation, drop-path masks and "
        "updates: the final weights, EMA included, agree to the max-abs-diff shown), so a "
        "difference in speed is Lightning's own cost: "
        + parts
        + ". Per step, the shell adds Lightning's loop (hooks, the optimiser closure, "
        "gradient clipping through the precision plugin, the data fetcher) and the module's "
        "own bookkeeping (the accuracy of every batch and the two `self.log` calls with their "
        "per-epoch aggregation), a roughly constant time whose share shrinks as steps get "
        "longer; once per `fit` it adds the Trainer's construction, setup and teardown. "
        + (
            "The goal of a ratio of at least 0.95 is met on every configuration."
            if goal
            else "The goal of a ratio of at least 0.95 is not met on every configuration."
        )
        + warning
    )


def section(
    results: Sequence[Result],
    info: dict[str, str],
    command: str,
    repeats: int,
) -> str:
    recipes = "; ".join(f"*{r.config.name}*: {r.config.recipe.describe()}" for r in results)
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
            "steps/s. *steps/s* counts the whole "
            "run (network, optimiser or module and Trainer construction to the end of "
            "training), *in-loop ratio* only the epoch loop (Lightning: `on_train_start` to "
            "`on_train_end`), *pairwise ratios* the spread of the back-to-back pairs, *other "
            "load* the median (largest) number of cores other processes kept busy during a "
            "timed run (`/proc/stat`). Lightning: `RetrainLitModule` + `RetrainRecipe` under "
            "the CPU trainer preset with the recipe's clipping, no validation, checkpoint or "
            "logger; plain: the same recipe written out. Same initial weights "
            "(`build_retrain_network` after `manual_seed(0)`), batches "
            "(`train_loader(seed=0)`) and per-step seeds (`RetrainRecipe.step_seed`). "
            f"Recipes: {recipes}.",
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
        help="timed runs of each side, medians reported (default: 5; 1 with --quick)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs of every config (default: 15 on digits, 3 on the DARTS network)",
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
        args.repeats = 1 if args.quick else 5
    if args.repeats < 1 or (args.epochs is not None and args.epochs < 1):
        p.error("--repeats and --epochs must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    quiet_lightning(".*no `val_dataloader`.*")  # the module validates in the stage; none here
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
        shown = ["benchmarks/retrain_throughput.py", *(argv if argv is not None else sys.argv[1:])]
        command = "WANDB_MODE=disabled python " + shlex.join(shown)
        write_results(section(results, info, command, repeats), args.results)
        print(f"wrote {args.results}")
    return results


if __name__ == "__main__":
    main()
