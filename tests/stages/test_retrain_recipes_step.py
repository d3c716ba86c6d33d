"""Every ``retrain=`` recipe trains one real step of a tiny network of the space it is meant for.

Each recipe is composed from ``conf/`` and shrunk (one batch of four random images). The retrain
stage's own helpers then build the space, the data and the Lightning module, and fit it
(`RetrainStage._fit`); the Trainer is cut to the first epoch of the recipe's schedule, so
exactly one optimiser step runs. That step must follow the recipe: the loss (label smoothing,
auxiliary head), the learning rate, drop path, dropout, weight decay, inherited weights,
upsampling and EMA.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from nasx.config import build
from nasx.lit.retrain import RetrainLitModule
from nasx.lit.tracking import SearchTracker
from nasx.pipeline import build_parts
from nasx.retrain.recipe import RetrainRecipe
from nasx.search_space.base import Architecture, SearchSpace
from nasx.stages.context import RunContext
from nasx.stages.retrain import RetrainStage, recipe_settings
from tests.conftest import CONF

pytestmark = pytest.mark.usefixtures("one_thread")

RECIPES = sorted(p.stem for p in (CONF / "retrain").glob("*.yaml"))
EPOCHS = 8  # the schedule's length: the step is the first of 8 (darts_imagenet warms up 5)
BATCH = 4
NB201 = ("space=nb201_cpu", "space.image_size=8")
NB201_ARCH = (
    "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
)
# DARTS's CIFAR network (NetworkCIFAR) with C=4 and 5 cells: the auxiliary head after cell 3
DARTS_CIFAR: tuple[str, ...] = ("space=darts_cpu", "space.channels=4", "space.layers=5")
DARTS_CIFAR += ("space.net_channels=4", "space.net_layers=5")
# NetworkImageNet (three stride-2 stem convolutions) with C=4 and 5 cells at 32 px
DARTS_IMAGENET: tuple[str, ...] = (
    "space=darts",
    "space.channels=4",
    "space.layers=5",
    "space.image_size=32",
)
DARTS_IMAGENET += ("space.net_channels=4", "space.net_layers=5", "space.net_image_size=32")
#: the space each recipe is meant for, shrunk, and the architecture retrained (None: the
#: space's largest; OFA's has the 48-px resolution, so NSGANetV2 upsamples 32 px to it)
SPACES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "default": (NB201, NB201_ARCH),
    "smoke": (NB201, NB201_ARCH),
    "darts_cifar": (DARTS_CIFAR, "DARTS_V2"),
    "darts_imagenet": (DARTS_IMAGENET, "RLNAS_IMAGENET"),
    # NAG's own cell space is not in nasx; DARTS's CIFAR network has the auxiliary head and
    # the drop path the recipe trains with
    "nag_cifar": (DARTS_CIFAR, "GENAS_FLATNESS_CIFAR10"),
    "rlnas_mobilenet": (("space=mobilenet_cpu",), "RLNAS_MOBILENET"),
    "nsganetv2_cifar": (("space=ofa_mbv3_cpu",), None),
}
#: tiny random data: 16 training images of 4 classes
DATA = ("dataset=fake", "dataset.num_train=32", "dataset.num_test=8", "dataset.size=8")
SHRINK: tuple[str, ...] = (
    "retrain.limit_batches=1",
    f"retrain.batch_size={BATCH}",
    "stages=[retrain]",
)
SHRINK += ("logger=none", "progress=false")
#: (recipe, extra overrides): every recipe as shipped, and the default one with EMA
CASES = [(r, ()) for r in RECIPES] + [("default", ("retrain.ema_decay=0.5",))]
IDS = [r + ("-ema" if extra else "") for r, extra in CASES]


def test_every_recipe_has_a_space() -> None:
    assert set(SPACES) == set(RECIPES)


def expected_lr(node: DictConfig) -> tuple[float, float]:
    """The learning rate of the first step and after it (one step per epoch), by formula."""
    lr0, sched = float(node.optimizer.lr), node.scheduler
    target, total = str(sched._target_), int(sched.T_max)
    if target.endswith("CosineAnnealingLR"):  # stepped after each epoch
        eta = float(sched.eta_min)
        return lr0, eta + (lr0 - eta) * (1 + math.cos(math.pi / total)) / 2
    if target.endswith("warmup_linear"):  # GeNAS adjust_lr: epoch e at (E-w-e)/(E-w)*(e+1)/w
        warm = int(sched.warmup)
        tail = total - warm
        return lr0 / warm, lr0 * (tail - 1) / tail * 2 / warm
    if target.endswith("linear_decay"):  # per step, to 0 over T_max epochs of one step each
        return lr0, lr0 * (1 - 1 / total)
    raise AssertionError(f"no formula for the schedule {target}: add one")


@dataclass
class Step:
    """One training step of a recipe's module and what it saw."""

    recipe: RetrainRecipe
    space: SearchSpace
    arch: Architecture
    module: RetrainLitModule
    classes: int
    trainer: Any = None
    initial: dict[str, torch.Tensor] = field(default_factory=dict)  # the weights before it
    inherited: dict[str, torch.Tensor] = field(default_factory=dict)  # select's weights.pt
    batches: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    inputs: list[torch.Tensor] = field(default_factory=list)  # the network's training input
    outputs: list[Any] = field(default_factory=list)
    losses: list[torch.Tensor] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    drop_paths: list[float | None] = field(default_factory=list)
    graded: set[str] = field(default_factory=set)  # parameters with a non-zero gradient


def one_step(
    cfg: DictConfig, run_dir: Path, arch_text: str | None, monkeypatch: pytest.MonkeyPatch
) -> Step:
    """Build the retrain stage's module for ``cfg`` and fit it for one epoch of one batch."""
    parts = build_parts(cfg)
    run = RunContext(cfg, run_dir, parts, None, SearchTracker(None, parts.metric.name))
    settings = recipe_settings(cfg)
    recipe: RetrainRecipe = build("retrain", OmegaConf.create(settings))
    space = RetrainStage._space(run, recipe)
    data = RetrainStage._data(run, recipe)
    arch = space.extremes()[-1] if arch_text is None else space.parse(arch_text)
    text, fdir = space.to_str(arch), run_dir / "final" / "given_00"
    if recipe.init == "inherited":
        # select's weights.pt: a network of 1000 classes (OFA's ImageNet head) with other
        # weights, whose classifier must start fresh and every other tensor be inherited
        torch.manual_seed(123)
        other = build("space", cfg.space, num_classes=1000, dropout=recipe.dropout or 0.0)
        inherited = other.build_retrain_network(arch).state_dict()
        fdir.mkdir(parents=True)
        torch.save({"state_dict": inherited}, fdir / "weights.pt")
    module = RetrainStage._module(run, recipe, space, data, arch, fdir, "given_00", text)
    step = Step(recipe, space, arch, module, data.num_classes)
    step.initial = {k: v.detach().clone() for k, v in module.net.state_dict().items()}
    if recipe.init == "inherited":
        step.inherited = inherited
    original = RetrainLitModule.training_step

    def training_step(self: RetrainLitModule, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = original(self, batch, batch_idx)
        step.batches.append((batch[0].clone(), batch[1].clone()))
        step.losses.append(loss.detach().clone())
        step.lrs.append(float(self.trainer.optimizers[0].param_groups[0]["lr"]))
        step.drop_paths.append(getattr(self.net, "drop_path_prob", None))
        return loss

    def on_before_optimizer_step(self: RetrainLitModule, optimizer: Any) -> None:
        params = self.net.named_parameters()
        step.graded = {k for k, p in params if p.grad is not None and bool(p.grad.any())}

    def on_forward(mod: nn.Module, args: tuple[torch.Tensor, ...], out: Any) -> None:
        if mod.training:  # not the validation forward
            step.inputs.append(args[0].detach().clone())
            step.outputs.append(out)

    def first_epoch(checkpoint_dir: Path, max_epochs: int, *args: Any, **kw: Any) -> Any:
        assert max_epochs == recipe.epochs
        step.trainer = RunContext.trainer(run, checkpoint_dir, 1, *args, **kw)
        return step.trainer

    monkeypatch.setattr(RetrainLitModule, "training_step", training_step)
    monkeypatch.setattr(RetrainLitModule, "on_before_optimizer_step", on_before_optimizer_step)
    monkeypatch.setattr(run, "trainer", first_epoch)
    module.net.register_forward_hook(on_forward)
    RetrainStage._fit(run, recipe, module, data, fdir, {"arch": text, "recipe": settings})
    return step


@pytest.mark.parametrize(("option", "extra"), CASES, ids=IDS)
def test_recipe_trains_one_step(
    compose_cfg: Callable[..., DictConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    option: str,
    extra: tuple[str, ...],
) -> None:
    overrides, arch_text = SPACES[option]
    epochs = () if option == "smoke" else (f"retrain.epochs={EPOCHS}",)  # smoke keeps its 1
    cfg = compose_cfg(f"retrain={option}", *overrides, *DATA, *SHRINK, *epochs, *extra)
    caplog.set_level(logging.WARNING, logger="nasx")
    step = one_step(cfg, tmp_path, arch_text, monkeypatch)
    recipe, module, net, space = step.recipe, step.module, step.module.net, step.space

    # exactly one optimiser step, with the recipe's gradient clipping, checkpointed
    assert step.trainer.global_step == 1 and len(step.losses) == len(step.inputs) == 1
    clip = (step.trainer.gradient_clip_val, step.trainer.gradient_clip_algorithm)
    assert clip == (recipe.grad_clip, recipe.grad_clip_algorithm)
    assert (tmp_path / "final" / "given_00" / "retrain" / "last.ckpt").is_file()

    # a batch of the data at data_resolution, fed to the network at the architecture's
    # resolution (NSGANetV2: 32-px CIFAR batches upsampled bicubically to 48 px)
    (x, y), seen = step.batches[0], step.inputs[0]
    res, size = recipe.data_resolution or space.input_shape[1], space.input_shape_of(step.arch)[1]
    assert x.shape == (BATCH, 3, res, res) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and int(y.min()) >= 0 and int(y.max()) < step.classes
    assert seen.shape == (BATCH, 3, size, size) and module.bicubic == recipe.upsample_to_resolution
    assert (size > res) == recipe.upsample_to_resolution

    # the loss: smoothed cross-entropy, plus aux_weight x the auxiliary head's (DARTS)
    out, loss = step.outputs[0], step.losses[0]
    assert torch.isfinite(loss)
    has_aux = isinstance(out, tuple)
    assert has_aux == (recipe.aux_weight > 0 and "Darts" in type(space).__name__)
    logits = out[0] if has_aux else out
    assert logits.shape == (BATCH, step.classes)
    want = nn.functional.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
    if has_aux:
        assert out[1].shape == (BATCH, step.classes)
        aux = nn.functional.cross_entropy(out[1], y, label_smoothing=recipe.label_smoothing)
        want = want + recipe.aux_weight * aux
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)

    # the learning rate of the step and after it follow the recipe's schedule; weight decay
    # on every parameter, or on conv kernels only (RLNAS)
    during, after = expected_lr(cfg.retrain)
    assert step.lrs[0] == pytest.approx(during, rel=1e-6)
    groups = step.trainer.optimizers[0].param_groups
    assert [g["lr"] for g in groups] == pytest.approx([after] * len(groups), rel=1e-6)
    decay = float(cfg.retrain.optimizer.weight_decay)
    if recipe.weight_decay_on == "conv":
        assert [g["weight_decay"] for g in groups] == [decay, 0.0]
        assert all(p.ndim == 4 for p in groups[0]["params"])
        assert all(p.ndim != 4 for p in groups[1]["params"])
    else:
        assert [g["weight_decay"] for g in groups] == [decay]

    # drop path: set on networks that have it, at the schedule's value of the first step
    # (DARTS: drop_path x epoch / epochs, NAG: drop_path x step / steps, both 0 at first)
    assert module.drop_path == (recipe.drop_path > 0 and hasattr(net, "drop_path_prob"))
    if module.drop_path:
        first = {"constant": recipe.drop_path, "linear_epoch": 0.0, "linear_step": 0.0}
        assert step.drop_paths[0] == first[recipe.drop_path_schedule]
    elif recipe.drop_path > 0:
        assert "has no drop path" in caplog.text
    # dropout: the space is rebuilt with the recipe's where its constructor takes one
    if recipe.dropout is not None:
        if "dropout" in inspect.signature(type(space)).parameters:
            assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [recipe.dropout]
        else:
            assert "builds no dropout layer" in caplog.text

    # inherited weights: all but the classifier of another class count (reset) are select's
    if step.inherited:
        reset = {k for k, v in step.inherited.items() if step.initial[k].shape != v.shape}
        assert reset and all("classifier" in k for k in reset)
        kept = {k: v for k, v in step.inherited.items() if k not in reset}
        assert all(torch.equal(step.initial[k], v) for k, v in kept.items())

    # every parameter that received a gradient moved; the auxiliary head with its loss only
    now = dict(net.named_parameters())
    moved = {k for k, p in now.items() if not torch.equal(step.initial[k], p.detach())}
    assert step.graded and step.graded <= moved and any("classifier" in k for k in moved)
    assert any(k.startswith("auxiliary_head") for k in step.graded) == has_aux

    # EMA: the averaged copy is validated and saved; torch's AveragedModel takes the weights
    # of the first update as they are
    if recipe.ema_decay is not None:
        assert module.ema is not None and int(module.ema.n_averaged) == 1
        assert module.eval_net is module.ema.module and module.eval_net is not net
        ema = dict(module.ema.module.named_parameters())
        assert all(torch.equal(ema[k], p) for k, p in now.items())
    else:
        assert module.ema is None and module.eval_net is net
