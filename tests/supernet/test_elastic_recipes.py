"""Elastic recipes (``supernet=sandwich|progressive_shrinking``) on a tiny fake elastic supernet."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from nasx.config import build, check_config, recipe_node
from nasx.errors import NasxError
from nasx.lit.supernet import SupernetLitModule
from nasx.search_space import NB201Space
from nasx.supernet import Supernet, TrainingRecipe, build_supernet
from nasx.supernet.elastic import (
    OFA_PHASES,
    ElasticSupernet,
    Phase,
    ProgressiveShrinkingRecipe,
    SandwichRecipe,
    distillation_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")

KS, ES, DS, RS = (1, 3), (1, 2), (1, 2), (6, 8)
C, STAGES, MAX_D = 4, 2, 2


class _Block(nn.Module):
    """Inverted residual: kernel size and expand ratio slice the weights (as OFA's do)."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Parameter(torch.randn(C * max(ES), C, max(KS), max(KS)) * 0.3)
        self.project = nn.Parameter(torch.randn(C, C * max(ES), 1, 1) * 0.3)

    def forward(self, x: torch.Tensor, k: int, e: int) -> torch.Tensor:
        o = (max(KS) - k) // 2
        w = self.expand[: C * e, :, o : o + k, o : o + k]
        h = F.conv2d(x, w, padding=k // 2).relu()
        return x + F.conv2d(h, self.project[:, : C * e])


class TinyElastic(Supernet):
    """OFA-like elastic net: ks/e per block, d per stage (its first d blocks run), r."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, C, 1)
        self.blocks = nn.ModuleList(_Block() for _ in range(STAGES * MAX_D))
        self.head = nn.Linear(C, 3)
        self.seen: list[int] = []  # input sizes, in call order

    def forward(self, x: torch.Tensor, path: Any) -> torch.Tensor:
        self.seen.append(x.shape[-1])
        h = self.stem(x)
        for s in range(STAGES):
            for b in range(path["d"][s]):
                i = s * MAX_D + b
                h = self.blocks[i](h, path["ks"][i], path["e"][i])
        return self.head(h.mean((-2, -1)))

    def sample_path(
        self,
        rng: np.random.Generator,
        ks: Sequence[int] | None = None,
        e: Sequence[int] | None = None,
        d: Sequence[int] | None = None,
        r: Sequence[int] | None = None,
    ) -> dict[str, Any]:
        def pick(choices: Sequence[int], n: int) -> list[int]:
            return [int(c) for c in rng.choice(list(choices), n)]

        n = STAGES * MAX_D
        return {
            "ks": pick(ks or KS, n),
            "e": pick(e or ES, n),
            "d": pick(d or DS, STAGES),
            "r": pick(r or RS, 1)[0],
        }

    def largest_path(self) -> dict[str, Any]:
        n = STAGES * MAX_D
        return {"ks": [max(KS)] * n, "e": [max(ES)] * n, "d": [max(DS)] * STAGES, "r": max(RS)}

    def smallest_path(self) -> dict[str, Any]:
        n = STAGES * MAX_D
        return {"ks": [min(KS)] * n, "e": [min(ES)] * n, "d": [min(DS)] * STAGES, "r": min(RS)}

    def path_of(self, arch: Any) -> Any:
        raise NotImplementedError

    def extract(self, arch: Any) -> nn.Module:
        raise NotImplementedError


SGD = partial(torch.optim.SGD, lr=0.1, momentum=0.9)
COSINE = partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=2)
# phase 0: full network; phase 1: elastic kernel only (e and d at their largest)
TWO_PHASES = [Phase(1), Phase(1, ks=[1, 3], e=[2], d=[2], dynamic_batch_size=2)]


def _net(seed: int = 0) -> TinyElastic:
    torch.manual_seed(seed)
    return TinyElastic()


def _batch(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def _run(net: TinyElastic, x: torch.Tensor, path: dict[str, Any]) -> torch.Tensor:
    """``path``'s logits on ``x`` at its resolution, as the recipes feed it."""
    return net(TrainingRecipe.inputs_for(x, path), path)


def _ps(**kw: Any) -> ProgressiveShrinkingRecipe:
    return ProgressiveShrinkingRecipe(2, SGD, COSINE, **({"phases": TWO_PHASES} | kw))


def test_fake_supernet_is_elastic() -> None:
    net = _net()
    assert isinstance(net, ElasticSupernet)
    x, _ = _batch()
    for path in (net.largest_path(), net.smallest_path(), net.sample_path(np.random.default_rng())):
        assert net(x, path).shape == (6, 3)


def test_sandwich_paths_are_largest_smallest_then_reproducible_random() -> None:
    net, recipe = _net(), SandwichRecipe(1, SGD, n_random=3)
    paths = recipe.paths(net, 7, 11)
    assert len(paths) == 5
    assert paths[0] == net.largest_path() and paths[1] == net.smallest_path()
    rng = np.random.default_rng([7, 11])
    assert paths[2:] == [net.sample_path(rng) for _ in range(3)]
    assert recipe.paths(net, 7, 11) == paths  # every rank and a resumed run draw the same
    assert recipe.paths(net, 7, 12)[2:] != paths[2:]
    assert recipe.paths(net, 8, 11)[2:] != paths[2:]


def test_sandwich_loss_is_label_loss_plus_distillation_by_hand() -> None:
    net, (x, y) = _net(), _batch()
    recipe = SandwichRecipe(1, SGD, label_smoothing=0.1, kd_ratio=0.5)
    paths = recipe.paths(net, 0, 3)
    loss, logits = recipe.loss(net, x, y, paths)
    with torch.no_grad():
        assert net.seen == [p["r"] for p in paths]  # each path at its own resolution
        t = _run(net, x, paths[0])
        want = F.cross_entropy(t, y, label_smoothing=0.1)
        p_t = torch.softmax(t, 1)
        for path in paths[1:]:
            s = _run(net, x, path)
            want += 0.5 * (-(p_t * torch.log_softmax(s, 1)).sum(1)).mean()
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(logits, t)
    # kd_with_labels adds each student's label loss; mse distils the logits
    both = SandwichRecipe(1, SGD, kd_type="mse", kd_with_labels=True, n_random=0)
    loss2, _ = both.loss(net, x, y, both.paths(net, 0, 3))
    with torch.no_grad():
        s = _run(net, x, net.smallest_path())
        want2 = F.cross_entropy(t, y) + F.mse_loss(s, t) + F.cross_entropy(s, y)
    torch.testing.assert_close(loss2, want2)


def test_distillation_gradient_does_not_reach_the_teacher() -> None:
    student = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, requires_grad=True)
    for kd_type in ("ce", "mse"):
        distillation_loss(student, teacher, kd_type).backward()
        assert teacher.grad is None and student.grad is not None
    # the sandwich: the largest's gradient comes from its label loss only
    net, (x, y) = _net(), _batch()
    recipe = SandwichRecipe(1, SGD)
    teacher_logits = _run(net, x, net.largest_path())
    teacher_logits.retain_grad()
    recipe.student_loss(_run(net, x, net.smallest_path()), teacher_logits, y).backward()
    assert teacher_logits.grad is None


def test_soft_target_loss_matches_ofa() -> None:
    ofa_utils = pytest.importorskip("ofa.utils")
    s, t = torch.randn(5, 4), torch.randn(5, 4)
    want = ofa_utils.cross_entropy_loss_with_soft_target(s, torch.softmax(t, 1))
    torch.testing.assert_close(distillation_loss(s, t, "ce"), want)


def test_progressive_shrinking_phase_follows_the_step_and_restricts_choices() -> None:
    net = _net()
    phases = [
        Phase(2),
        Phase(1, ks=[1, 3], e=[2], d=[2], dynamic_batch_size=3),
        Phase(2, ks=[1, 3], e=[2], d=[1, 2]),
    ]
    recipe = ProgressiveShrinkingRecipe(5, SGD, phases=phases, dynamic_batch_size=2)
    with pytest.raises(RuntimeError, match="configure_optimizers"):
        recipe.paths(net, 0, 0)
    recipe.configure_optimizers(net.parameters(), steps_per_epoch=4)
    got = [recipe.phase_index(s) for s in (0, 7, 8, 11, 12, 19, 25)]
    assert got == [0, 0, 1, 1, 2, 2, 2]  # the last phase continues past the schedule
    assert recipe.paths(net, 0, 7) == [net.largest_path()]
    kernel = recipe.paths(net, 0, 9)
    assert kernel[0] == net.largest_path() and len(kernel) == 1 + 3
    for p in kernel[1:]:
        assert set(p["e"]) == {2} and set(p["d"]) == {2}
    assert {k for p in kernel[1:] for k in p["ks"]} == {1, 3}
    rng = np.random.default_rng([0, 9])
    assert kernel[1:] == [net.sample_path(rng, ks=[1, 3], e=[2], d=[2]) for _ in range(3)]
    depth = recipe.paths(net, 0, 12)
    assert len(depth) == 1 + 2  # the recipe's dynamic_batch_size
    assert {d for p in depth[1:] for d in p["d"]} <= {1, 2}
    # kd_ratio=0: no teacher, the sub-networks learn from the labels
    plain = ProgressiveShrinkingRecipe(5, SGD, phases=phases, kd_ratio=0.0)
    plain.configure_optimizers(net.parameters(), steps_per_epoch=4)
    assert len(plain.paths(net, 0, 9)) == 3 and plain.paths(net, 0, 0) == [net.largest_path()]


def test_progressive_shrinking_loss_distils_from_the_full_network() -> None:
    net, (x, y) = _net(), _batch()
    recipe = _ps(label_smoothing=0.1)
    recipe.configure_optimizers(net.parameters(), steps_per_epoch=2)
    full = recipe.paths(net, 0, 1)
    loss, logits = recipe.loss(net, x, y, full)
    torch.testing.assert_close(
        loss, F.cross_entropy(_run(net, x, full[0]), y, label_smoothing=0.1)
    )  # phase 0: the full network on the labels
    paths = recipe.paths(net, 0, 2)
    loss, logits = recipe.loss(net, x, y, paths)
    assert not logits.requires_grad  # the in-place teacher runs under no_grad
    with torch.no_grad():
        t = _run(net, x, net.largest_path())
        want = sum(
            (-(torch.softmax(t, 1) * torch.log_softmax(s, 1)).sum(1)).mean()
            + F.cross_entropy(s, y, label_smoothing=0.1)
            for s in (_run(net, x, p) for p in paths[1:])
        )
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(logits, t)


def test_validation_names_both_numbers() -> None:
    with pytest.raises(ValueError, match=r"supernet.epochs=3 but the phases' epochs sum to 2"):
        ProgressiveShrinkingRecipe(3, SGD, phases=TWO_PHASES)
    assert ProgressiveShrinkingRecipe(590, SGD, phases=list(OFA_PHASES)).phases == OFA_PHASES
    with pytest.raises(ValueError, match="full network"):
        ProgressiveShrinkingRecipe(2, SGD, phases=[Phase(1, ks=[3]), Phase(1)])
    with pytest.raises(ValueError, match=r"phases\[1\]: keys"):
        ProgressiveShrinkingRecipe(2, SGD, phases=[{"epochs": 1}, {"epochs": 1, "k": [3]}])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="kd_type"):
        SandwichRecipe(1, SGD, kd_type="kl")
    with pytest.raises(ValueError, match="no loss"):
        SandwichRecipe(1, SGD, kd_ratio=0.0)


def test_non_elastic_supernet_fails_clearly() -> None:
    space = NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8)
    nb201 = build_supernet(space)
    with pytest.raises(NasxError, match=r"supernet=sandwich needs an elastic supernet \(space="):
        SandwichRecipe(1, SGD).paths(nb201, 0, 0)
    recipe = _ps()
    recipe.configure_optimizers([nn.Parameter(torch.zeros(1))], steps_per_epoch=1)
    with pytest.raises(NasxError, match="supernet=progressive_shrinking needs an elastic"):
        recipe.paths(nb201, 0, 0)


@pytest.mark.parametrize("option", ["sandwich", "progressive_shrinking"])
def test_configs_compose_into_the_recipes(
    compose_cfg: Callable[..., DictConfig], option: str
) -> None:
    cfg = compose_cfg(f"supernet={option}")
    check_config(cfg)  # every key is a constructor argument of the right type
    recipe = build("supernet", recipe_node(cfg))
    assert type(recipe).option == option and recipe.kd_type == "ce"
    if option == "progressive_shrinking":
        assert recipe.epochs == sum(p.epochs for p in recipe.phases)
        assert [p.d for p in recipe.phases[1:]] == [[4], [3, 4], [2, 3, 4], [2, 3, 4], [2, 3, 4]]
        bad = compose_cfg(f"supernet={option}", "supernet.phases.0.epochs=7")
        with pytest.raises(NasxError, match="epochs=20 but the phases' epochs sum to 21"):
            check_config(bad)


def _fit(
    recipe_factory: Any, root: Path, epochs: int, ckpt: Path | None = None
) -> tuple[SupernetLitModule, L.Trainer]:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(12, 1, 8, 8, generator=g), torch.randint(0, 3, (12,), generator=g)
    data = TensorDataset(x, y)
    module = SupernetLitModule(_net(), recipe_factory(), seed=3)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        default_root_dir=str(root),
        callbacks=[ModelCheckpoint(dirpath=root, filename="{epoch}", save_top_k=-1)],
    )
    trainer.fit(
        module,
        DataLoader(data, batch_size=4),
        ckpt_path=None if ckpt is None else str(ckpt),
        weights_only=True,
    )
    return module, trainer


@pytest.mark.parametrize(
    "factory",
    [
        partial(SandwichRecipe, 2, SGD, COSINE, n_random=1),
        partial(ProgressiveShrinkingRecipe, 2, SGD, COSINE, phases=TWO_PHASES),
    ],
    ids=["sandwich", "progressive_shrinking"],
)
def test_lightning_fit_and_resume_match(factory: Any, tmp_path: Path) -> None:
    module, trainer = _fit(factory, tmp_path / "full", epochs=2)
    assert trainer.global_step == 6
    net = module.net
    assert isinstance(net, TinyElastic)
    assert module.recipe.paths(net, 3, 5) != [net.largest_path()]  # elastic at step 5
    start = _net().state_dict()
    trained = net.state_dict()
    assert any(not torch.equal(start[k], trained[k]) for k in start)
    # resume from the checkpoint written after epoch 1 (Lightning names it epoch=0)
    resumed, rtrainer = _fit(
        factory, tmp_path / "resumed", epochs=2, ckpt=tmp_path / "full" / "epoch=0.ckpt"
    )
    assert rtrainer.global_step == 6
    for k, v in trained.items():
        assert torch.equal(v, resumed.net.state_dict()[k]), k
