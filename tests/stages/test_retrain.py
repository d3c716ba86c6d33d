"""The retrain stage: outputs, given architectures, resume, EMA, inherited weights, recipes."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from nasx import pipeline
from nasx.config import build
from nasx.errors import NasxError
from nasx.io import load_state_dict
from nasx.lit.retrain import RetrainLitModule
from nasx.retrain import BatchAugment, RetrainRecipe
from nasx.retrain.augment import cutout, to_resolution
from nasx.retrain.recipe import evaluate_topk, load_inherited

pytestmark = pytest.mark.usefixtures("one_thread")

SMOKE = ("experiment=smoke", "retrain=smoke")
ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
OPTIONS = (
    "default",
    "smoke",
    "nsganetv2_cifar",
    "rlnas_mobilenet",
    "darts_cifar",
    "darts_imagenet",
    "nag_cifar",
)


def _sgd(params):
    return torch.optim.SGD(params, lr=0.1)


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    """A smoke run of supernet, search, select and retrain (read-only for the tests)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tests.conftest import CONF

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[*SMOKE, "stages=[supernet,search,select,retrain]"])
    GlobalHydra.instance().clear()
    run_dir = tmp_path_factory.mktemp("retrain")
    pipeline.run(cfg, run_dir)
    return run_dir


def test_smoke_run_retrains_every_selected_architecture(searched: Path) -> None:
    selected = json.loads((searched / "final" / "selection.json").read_text())["selected"]
    marker = json.loads((searched / "final" / "retrain.json").read_text())
    assert [a["name"] for a in marker["architectures"]] == [s["name"] for s in selected]
    assert marker["recipe"]["epochs"] == 1 and marker["recipe"]["limit_batches"] == 2
    for sel in selected:
        fdir = searched / "final" / sel["name"]
        entry = json.loads((fdir / "stats.json").read_text())["retrain"]
        assert entry["arch"] == sel["arch"] and entry["epochs"] == 1
        assert 0 <= entry["test_top1"] <= entry["test_top5"] <= 100
        assert entry["params"] > 0 and entry["macs"] > 0 and entry["input_shape"] == [3, 8, 8]
        assert entry["recipe"] == marker["recipe"]
        state = load_state_dict(fdir / "retrained.pt")
        assert state.keys() == load_state_dict(fdir / "weights.pt").keys()
        assert (fdir / "retrain" / "last.ckpt").exists()
        # select's own entries are kept beside the retrain entry
        assert "reasons" in json.loads((fdir / "stats.json").read_text())


def test_same_recipe_skips_changed_recipe_retrains(
    searched: Path, compose_cfg, tmp_path: Path, monkeypatch
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(searched, run_dir)
    name = json.loads((run_dir / "final" / "retrain.json").read_text())["architectures"][0]["name"]
    before = load_state_dict(run_dir / "final" / name / "retrained.pt")

    def no_training(self, batch, batch_idx):
        raise AssertionError("trained although the recipe is unchanged")

    monkeypatch.setattr(RetrainLitModule, "training_step", no_training)
    summary = pipeline.run(compose_cfg(*SMOKE, "stages=[retrain]"), run_dir)
    assert summary["retrain"]["architectures"][0]["name"] == name
    monkeypatch.undo()
    pipeline.run(compose_cfg(*SMOKE, "stages=[retrain]", "retrain.optimizer.lr=0.5"), run_dir)
    after = load_state_dict(run_dir / "final" / name / "retrained.pt")
    assert any(
        not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point()
    )
    marker = json.loads((run_dir / "final" / "retrain.json").read_text())
    assert marker["recipe"]["optimizer"]["lr"] == 0.5
    entry = json.loads((run_dir / "final" / name / "stats.json").read_text())["retrain"]
    assert entry["recipe"]["optimizer"]["lr"] == 0.5


def test_given_architecture_is_retrained_from_scratch(compose_cfg, tmp_path: Path) -> None:
    pipeline.run(compose_cfg(*SMOKE, "stages=[retrain]", f"+arch='{ARCH}'"), tmp_path)
    fdir = tmp_path / "final" / "given_00"
    assert (fdir / "arch.txt").read_text().strip() == ARCH
    stats = json.loads((fdir / "stats.json").read_text())
    assert stats["reasons"] == ["given"] and stats["retrain"]["init"] == "scratch"
    assert (fdir / "retrained.pt").exists() and not (fdir / "weights.pt").exists()


def test_inherited_init_without_weights_fails_clearly(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(*SMOKE, "stages=[retrain]", f"+arch='{ARCH}'", "retrain.init=inherited")
    with pytest.raises(NasxError, match=r"retrain.init=inherited needs the supernet weights"):
        pipeline.run(cfg, tmp_path)
    assert not (tmp_path / "final" / "given_00" / "retrained.pt").exists()


def test_interrupted_retraining_resumes_exactly_with_and_without_ema(
    compose_cfg, tmp_path: Path, monkeypatch
) -> None:
    base = (*SMOKE, "stages=[retrain]", f"+arch='{ARCH}'", "retrain.epochs=2")
    # random augmentation and a per-step schedule: every source of randomness must repeat
    base = (*base, "retrain.augment=cutout", "retrain.cutout_size=4")
    original = RetrainLitModule.training_step

    def crash_in_epoch_two(self, batch, batch_idx):
        if self.current_epoch == 1:
            raise RuntimeError("simulated crash")
        return original(self, batch, batch_idx)

    final: dict[str, dict[str, torch.Tensor]] = {}
    for tag, extra in (("raw", ()), ("ema", ("retrain.ema_decay=0.5",))):
        pipeline.run(compose_cfg(*base, *extra), tmp_path / f"{tag}_ref")
        cut = tmp_path / f"{tag}_cut"
        monkeypatch.setattr(RetrainLitModule, "training_step", crash_in_epoch_two)
        with pytest.raises(RuntimeError, match="simulated crash"):
            pipeline.run(compose_cfg(*base, *extra), cut)
        fdir = cut / "final" / "given_00"
        assert (fdir / "retrain" / "last.ckpt").exists() and not (fdir / "retrained.pt").exists()
        ckpt = torch.load(fdir / "retrain" / "last.ckpt", map_location="cpu", weights_only=True)
        assert ("ema.n_averaged" in ckpt["state_dict"]) == (tag == "ema")
        seen: set[int] = set()

        def record_epoch(self, batch, batch_idx, seen=seen):
            seen.add(self.current_epoch)
            return original(self, batch, batch_idx)

        monkeypatch.setattr(RetrainLitModule, "training_step", record_epoch)
        pipeline.run(compose_cfg(*base, *extra), cut)
        assert seen == {1}  # resumed after the first epoch, not retrained from the start
        ref = load_state_dict(tmp_path / f"{tag}_ref" / "final" / "given_00" / "retrained.pt")
        got = load_state_dict(fdir / "retrained.pt")
        assert ref.keys() == got.keys()
        assert all(torch.equal(ref[k], got[k]) for k in ref), tag
        final[tag] = ref
    raw, ema = final["raw"], final["ema"]
    assert any(not torch.equal(raw[k], ema[k]) for k in raw if raw[k].is_floating_point())


@pytest.mark.parametrize("option", OPTIONS)
def test_every_recipe_instantiates(compose_cfg, option: str) -> None:
    cfg = compose_cfg(f"retrain={option}")
    recipe = build("retrain", cfg.retrain)
    conf = recipe.configure_optimizers(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), 10)
    group = conf["optimizer"].param_groups[0]
    assert group.get("initial_lr", group["lr"]) == cfg.retrain.optimizer.lr  # before warm-up


def test_recipes_hold_the_papers_settings(compose_cfg) -> None:
    nsg = build("retrain", compose_cfg("retrain=nsganetv2_cifar").retrain)
    assert (nsg.epochs, nsg.batch_size, nsg.grad_clip, nsg.init) == (150, 96, 5.0, "inherited")
    assert (nsg.augment, nsg.upsample_to_resolution, nsg.data_resolution) == (
        "autoaugment_cutout",
        True,
        32,
    )
    assert (nsg.dropout, nsg.drop_path) == (0.2, 0.2)
    opt = nsg.optimizer([nn.Parameter(torch.zeros(1))])
    assert opt.defaults["weight_decay"] == 4e-5 and opt.defaults["momentum"] == 0.9
    rl = build("retrain", compose_cfg("retrain=rlnas_mobilenet").retrain)
    assert (rl.epochs, rl.batch_size, rl.label_smoothing, rl.init) == (240, 1024, 0.1, "scratch")
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    conf = rl.configure_optimizers(net, steps_per_epoch=10)
    opt, sched = conf["optimizer"], conf["lr_scheduler"]
    assert [g["weight_decay"] for g in opt.param_groups] == [4e-5, 0.0]
    assert len(opt.param_groups[0]["params"]) == 1  # the conv kernel alone is decayed
    assert opt.param_groups[0]["lr"] == 0.5 and sched["interval"] == "step"
    for _ in range(2400):  # 240 epochs of 10 steps: linear to 0
        opt.step()
        sched["scheduler"].step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    for option, schedule in (("darts_cifar", "linear_epoch"), ("nag_cifar", "linear_step")):
        r = build("retrain", compose_cfg(f"retrain={option}").retrain)
        assert (r.epochs, r.batch_size, r.aux_weight, r.drop_path) == (600, 96, 0.4, 0.2)
        assert (r.augment, r.cutout_size, r.drop_path_schedule) == ("cutout", 16, schedule)


def test_recipe_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="retrain.augment"):
        RetrainRecipe(1, _sgd, augment="mixup")
    with pytest.raises(ValueError, match="retrain.init"):
        RetrainRecipe(1, _sgd, init="pretrained")
    with pytest.raises(ValueError, match="retrain.ema_decay"):
        RetrainRecipe(1, _sgd, ema_decay=1.5)
    with pytest.raises(ValueError, match="retrain.corruptions"):
        RetrainRecipe(1, _sgd, corruptions=["rain"])  # unknown, or nasx.ood absent
    with pytest.raises(ValueError, match="retrain.severities"):
        RetrainRecipe(1, _sgd, severities=[0])


def test_a_schedule_the_epochs_cannot_hold_fails_before_training(compose_cfg, tmp_path) -> None:
    """darts_imagenet warms up 5 epochs: with retrain.epochs=3 the run stops at the config."""
    cfg = compose_cfg(*SMOKE, "retrain=darts_imagenet", "retrain.epochs=3", "stages=[retrain]")
    with pytest.raises(NasxError, match="warmup=5.*retrain.epochs"):
        pipeline.run(cfg, tmp_path)
    assert not (tmp_path / "final").exists()


@pytest.mark.skipif(importlib.util.find_spec("nasx.ood") is None, reason="needs nasx.ood")
def test_corruption_errors_join_the_retrain_entry(compose_cfg, tmp_path: Path, monkeypatch) -> None:
    base = (*SMOKE, "stages=[retrain]", f"+arch='{ARCH}'", "space.image_size=32", "dataset.size=32")
    pipeline.run(compose_cfg(*base), tmp_path)
    assert (
        "corruptions"
        not in json.loads((tmp_path / "final" / "given_00" / "stats.json").read_text())["retrain"]
    )

    def no_training(self, batch, batch_idx):
        raise AssertionError("retrained although only the evaluation changed")

    monkeypatch.setattr(RetrainLitModule, "training_step", no_training)
    pipeline.run(compose_cfg(*base, "retrain.corruptions=[gaussian_noise]"), tmp_path)
    stats = json.loads((tmp_path / "final" / "given_00" / "stats.json").read_text())
    ood = stats["retrain"]["corruptions"]
    assert set(ood["errors"]) == {"gaussian_noise"} and stats["retrain"]["recipe"]["corruptions"]
    assert ood["clean_error"] == pytest.approx(100 - stats["retrain"]["test_top1"], abs=1e-6)


class _AuxNet(nn.Module):
    """Logits and auxiliary logits in training mode, logits alone in eval mode (DARTS)."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.aux = nn.Linear(4, 3), nn.Linear(4, 3)
        self.drop_path_prob = 0.0

    def forward(self, x: torch.Tensor):
        x = x.flatten(1)
        return (self.body(x), self.aux(x)) if self.training else self.body(x)


def test_auxiliary_loss_and_drop_path_schedules() -> None:
    net, x, y = _AuxNet(), torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    plain, _ = RetrainRecipe(1, _sgd).loss(net, x, y)
    with_aux, _ = RetrainRecipe(1, _sgd, aux_weight=0.4).loss(net, x, y)
    aux = nn.functional.cross_entropy(net.aux(x), y)
    assert with_aux.item() == pytest.approx(plain.item() + 0.4 * aux.item(), rel=1e-6)
    by_epoch = RetrainRecipe(10, _sgd, drop_path=0.2, drop_path_schedule="linear_epoch")
    assert by_epoch.drop_path_at(epoch=5, step=999, steps_per_epoch=7) == pytest.approx(0.1)
    by_step = RetrainRecipe(10, _sgd, drop_path=0.2, drop_path_schedule="linear_step")
    assert by_step.drop_path_at(epoch=0, step=25, steps_per_epoch=5) == pytest.approx(0.1)
    module = RetrainLitModule(net, by_epoch, 0, "toy", lambda b: b, input_size=2)
    assert module.drop_path  # the network declares drop_path_prob: the shell will set it


def test_augmentations_keep_shape_and_cut_squares() -> None:
    torch.manual_seed(0)
    x = torch.randn(6, 3, 32, 32)
    cut = cutout(torch.ones(64, 1, 32, 32), 16)
    erased = (cut == 0).flatten(1).sum(1)
    assert erased.max() == 256 and erased.min() > 0  # clipped at the border, never more
    for kind in ("standard", "cutout", "autoaugment_cutout"):
        out = BatchAugment(kind, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))(x)
        assert out.shape == x.shape and out.dtype == x.dtype and not torch.equal(out, x)
    assert BatchAugment("none")(x) is x
    with pytest.raises(ValueError, match="mean and std"):
        BatchAugment("cutout")
    assert to_resolution(x, 40, bicubic=True, train=True).shape[-1] == 40


def test_inherited_weights_reset_a_resized_classifier_only() -> None:
    src = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10))
    src(torch.zeros(1, 3, 5, 5))
    dst = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(36, 3))
    assert load_inherited(dst, src.state_dict()) == ["2.weight", "2.bias"]
    assert torch.equal(dst[0].weight, src[0].weight)
    with pytest.raises(ValueError, match="do not fit"):
        load_inherited(dst, {"0.weight": src[0].weight})


def test_topk_accuracy_counts_hits() -> None:
    net = nn.Linear(3, 3, bias=False)
    nn.init.eye_(net.weight)
    x = torch.eye(3).repeat(2, 1)
    y = torch.tensor([0, 1, 2, 1, 1, 1])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    top1, top5 = evaluate_topk(net, loader, torch.device("cpu"), lambda b: b)
    assert top1 == pytest.approx(400 / 6) and top5 == 100.0


def test_two_process_ddp_retrains_and_rank_zero_writes(tmp_path: Path) -> None:
    """Real DDP on two CPU processes (gloo), with EMA weights that DDP must not wait for."""
    from tests.conftest import run_cli

    proc = run_cli(
        *SMOKE,
        "stages=[retrain]",
        f"+arch='{ARCH}'",
        "retrain.ema_decay=0.9",
        "trainer.strategy=ddp",
        "trainer.devices=2",
        f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = json.loads((tmp_path / "final" / "given_00" / "stats.json").read_text())
    assert stats["retrain"]["ema"] and stats["retrain"]["arch"] == ARCH
    assert (tmp_path / "final" / "given_00" / "retrained.pt").exists()


def test_ddp_retrain_after_search_in_one_command_is_refused(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(
        *SMOKE,
        "metric=params",
        "stages=[search,retrain]",
        "trainer.strategy=ddp",
        "trainer.devices=2",
    )
    with pytest.raises(NasxError, match=r"stages=\[retrain\]"):
        pipeline.run(cfg, tmp_path)
