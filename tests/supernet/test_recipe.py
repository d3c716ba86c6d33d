"""Training recipes (``supernet=``): optimiser and scheduler as config nodes, paths and loss."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch

from nasx import pipeline
from nasx.config import build, recipe_node
from nasx.search_space import NB201Space
from nasx.supernet import TrainingRecipe, build_supernet
from nasx.supernet.schedules import linear_decay, step_first_cosine


def test_another_optimizer_is_a_config_change(compose_cfg, tmp_path) -> None:
    cfg = compose_cfg(
        "experiment=smoke",
        "stages=[supernet]",
        "supernet.optimizer._target_=torch.optim.AdamW",
        "~supernet.optimizer.momentum",
        "~supernet.optimizer.nesterov",
        "supernet.optimizer.lr=0.003",
    )
    recipe = build("supernet", recipe_node(cfg))
    opt = recipe.optimizer([torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["lr"] == 0.003
    pipeline.run(cfg, tmp_path)
    assert (tmp_path / "supernet" / "final.ckpt").is_file()


def test_default_recipe_is_rlnas_sgd_with_per_epoch_cosine(compose_cfg) -> None:
    recipe = build("supernet", recipe_node(compose_cfg("supernet.epochs=7")))
    conf = recipe.configure_optimizers([torch.nn.Parameter(torch.zeros(1))], steps_per_epoch=3)
    opt, sched = conf["optimizer"], conf["lr_scheduler"]
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (
        0.025,
        0.9,
        5e-4,
        True,
    )
    assert sched["interval"] == "epoch" and sched["scheduler"].T_max == 7  # follows the epochs


def test_linear_decay_per_iteration_reaches_eta_min() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.25)
    sched = linear_decay(opt, T_max=2, steps_per_epoch=5, eta_min=5e-4)
    lrs = []
    for _ in range(11):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    want = [5e-4 + (0.25 - 5e-4) * (1 - min(s, 10) / 10) for s in range(11)]
    assert lrs == pytest.approx(want, rel=1e-9)


def test_step_interval_schedulers_get_the_steps_per_epoch() -> None:
    recipe = TrainingRecipe(
        2,
        partial(torch.optim.SGD, lr=0.1),
        partial(linear_decay, T_max=2),
        scheduler_interval="step",
    )
    conf = recipe.configure_optimizers([torch.nn.Parameter(torch.zeros(1))], steps_per_epoch=4)
    assert conf["lr_scheduler"]["interval"] == "step"
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    for _ in range(4):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)  # half-way after one epoch


def test_recipe_rejects_bad_values() -> None:
    opt = partial(torch.optim.SGD, lr=0.1)
    with pytest.raises(ValueError, match="at least one epoch"):
        TrainingRecipe(0, opt)
    with pytest.raises(ValueError, match="epoch or step"):
        TrainingRecipe(1, opt, scheduler_interval="batch")
    with pytest.raises(ValueError, match="norm or value"):
        TrainingRecipe(1, opt, grad_clip=5.0, grad_clip_algorithm="both")
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainingRecipe(1, opt, label_smoothing=1.0)
    # the GeNAS/RLNAS DARTS quirk's schedule: the first epoch already trains at cosine(1)
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.025)
    step_first_cosine(sgd, T_max=5, eta_min=0.001)
    want = 0.001 + 0.024 * (1 + math.cos(math.pi / 5)) / 2
    assert sgd.param_groups[0]["lr"] == pytest.approx(want)


def test_paths_depend_on_seed_and_step_only_and_loss_uses_label_smoothing() -> None:
    space = NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8)
    torch.manual_seed(0)
    supernet = build_supernet(space)
    recipe = TrainingRecipe(1, partial(torch.optim.SGD, lr=0.1), label_smoothing=0.1)
    assert recipe.paths(supernet, 3, 10) == recipe.paths(supernet, 3, 10)
    assert recipe.paths(supernet, 3, 10) != recipe.paths(supernet, 3, 11)
    x, y = torch.randn(6, 3, 8, 8), torch.randint(0, 4, (6,))
    paths = recipe.paths(supernet, 0, 0)
    loss, logits = recipe.loss(supernet, x, y, paths)
    want = torch.nn.functional.cross_entropy(supernet(x, paths[0]), y, label_smoothing=0.1)
    assert torch.allclose(loss, want) and logits.shape == (6, 4)
    assert paths[0] == supernet.sample_path(np.random.default_rng([0, 0]))


def test_warmup_linear_is_genas_imagenet_adjust_lr() -> None:
    from nasx.supernet.schedules import warmup_linear

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    sched = warmup_linear(opt, T_max=250, warmup=5)
    lrs = []
    for _ in range(250):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()

    def ref(e: int) -> float:  # GeNAS retrain.py adjust_lr with the warm-up factor
        lr = 0.5 * (245 - e) / 245 if 250 - e > 5 else 0.5 * (250 - e) / (245 * 5)
        return lr * (e + 1) / 5 if e < 5 else lr

    assert lrs == pytest.approx([ref(e) for e in range(250)], rel=1e-9)
    with pytest.raises(ValueError, match="warmup"):
        warmup_linear(opt, T_max=5, warmup=5)
