"""Early-exit training through Lightning: frozen backbone, joint training, kept state, seeds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nasx.early_exit.recipe import EarlyExitRecipe, ExitNetwork
from nasx.early_exit.rules import CumulativeRule, ExitRule, MarginRule
from nasx.early_exit.support import SupportSplit
from nasx.early_exit.tuning import TuningResult
from nasx.lit.early_exit import EarlyExitLitModule, quiet, quiet_trainer, train_early_exit

pytestmark = pytest.mark.usefixtures("one_thread")

N_CLASSES, DIM = 3, 6


class TinyExitNet(nn.Module):
    """Three linear "stages" with BatchNorm, an exit head after each (the `ExitNetwork` API)."""

    def __init__(self, binary: bool, n_exits: int = 3) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Linear(DIM if i == 0 else 8, 8), nn.BatchNorm1d(8), nn.ReLU())
            for i in range(n_exits)
        )
        extra = 1 if binary else 0
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Dropout(0.2), nn.Linear(8, N_CLASSES + (extra if i < n_exits - 1 else 0))
            )
            for i in range(n_exits)
        )
        self.exit_costs = [float(i + 1) for i in range(n_exits)]
        # what a sample leaving at exit b executes: the heads passed (0.1 each) included
        self.inference_costs = [c + 0.1 * i for i, c in enumerate(self.exit_costs)]
        self.thresholds: tuple[float, ...] | None = (0.5,) * (n_exits - 1)
        self.rule: ExitRule = CumulativeRule() if binary else MarginRule()

    @property
    def n_exits(self) -> int:
        return len(self.stages)

    def forward(self, x: torch.Tensor, backbone_grad: bool = True) -> list[torch.Tensor]:
        feats = []
        with torch.set_grad_enabled(backbone_grad and torch.is_grad_enabled()):
            for stage in self.stages:
                x = stage(x)
                feats.append(x)
        return [head(f) for head, f in zip(self.heads, feats, strict=True)]

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return self.stages.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        return self.heads.parameters()


def _data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, DIM, generator=g)
    w = torch.randn(DIM, N_CLASSES, generator=torch.Generator().manual_seed(99))
    return TensorDataset(x, (x @ w).argmax(1))


def _loaders() -> tuple[DataLoader[Any], DataLoader[Any]]:
    train = DataLoader(_data(160, 0), batch_size=32, shuffle=True)
    valid = DataLoader(_data(64, 1), batch_size=32)
    return train, valid


def _net(binary: bool, init_seed: int = 0) -> TinyExitNet:
    torch.manual_seed(init_seed)
    return TinyExitNet(binary)


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_stand_in_is_an_exit_network() -> None:
    assert isinstance(TinyExitNet(True), ExitNetwork)
    assert not isinstance(nn.Linear(2, 2), ExitNetwork)


def test_the_recipe_weighs_executed_or_cnas_costs() -> None:
    net = TinyExitNet(True)
    assert EarlyExitRecipe().costs(net) == net.inference_costs != net.exit_costs
    assert EarlyExitRecipe(executed_costs=False).costs(net) == net.exit_costs


def test_nachos_phase_freezes_the_backbone_and_trains_the_heads() -> None:
    net = _net(binary=True)
    recipe = EarlyExitRecipe(
        method="binary", backbone_epochs=0, warmup_ee_epochs=1, ee_epochs=1, mmax=1.5
    )
    stages, heads = _state(net.stages), _state(net.heads)
    train, valid = _loaders()
    res = train_early_exit(net, recipe, train, valid, seed=0)
    # weights and BatchNorm statistics of the backbone bit-identical, every head moved
    assert _same(_state(net.stages), stages)
    assert all(not torch.equal(v, heads[k]) for k, v in _state(net.heads).items())
    assert isinstance(res.evaluation, TuningResult)
    assert net.thresholds == res.evaluation.thresholds
    assert res.support_conf is not None and len(res.support_conf) == 3
    assert len(res.ece) == 3 and sum(res.evaluation.exit_ratios) == pytest.approx(1.0)


def test_reference_mode_lets_backbone_bn_statistics_drift_but_not_weights() -> None:
    net = _net(binary=True)
    recipe = EarlyExitRecipe(
        method="binary",
        backbone_epochs=0,
        warmup_ee_epochs=1,
        ee_epochs=0,
        support_set=False,
        freeze_backbone_bn=False,
    )
    before = _state(net.stages)
    train_early_exit(net, recipe, *_loaders(), seed=0)
    after = _state(net.stages)
    params = {k for k, _ in net.stages.named_parameters()}
    assert all(torch.equal(after[k], before[k]) for k in params)
    assert not torch.equal(after["0.1.running_mean"], before["0.1.running_mean"])


def test_edanas_joint_trains_backbone_and_heads() -> None:
    net = _net(binary=False)
    recipe = EarlyExitRecipe(method="joint", backbone_epochs=0, ee_epochs=2, tune_epsilon=False)
    before = dict(_state(net))
    res = train_early_exit(net, recipe, *_loaders(), seed=0)
    after = _state(net)
    # every parameter of the backbone and of every exit moved
    assert all(not torch.equal(after[k], before[k]) for k, _ in net.named_parameters())
    assert not isinstance(res.evaluation, TuningResult)
    assert res.evaluation.thresholds == (0.5, 0.5)  # the network's own, evaluated
    assert res.support_conf is None


class _Record(L.Callback):
    """Per validated epoch: the final-exit accuracy and loss the module logged, and the state."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self.epochs: list[tuple[float, float, dict[str, torch.Tensor]]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        acc = float(metrics[f"early_exit/{self.phase}/val_acc"])
        loss = float(metrics[f"early_exit/{self.phase}/val_loss"])
        self.epochs.append((acc, loss, _state(pl_module)))


# joint, 3 epochs: the best is epoch 1; 4 epochs: epochs 1 and 3 tie; backbone: epoch 0
@pytest.mark.parametrize(("phase", "epochs"), [("joint", 3), ("joint", 4), ("backbone", 4)])
def test_the_best_validated_epoch_is_kept(phase: str, epochs: int) -> None:
    net = _net(binary=False)
    recipe = EarlyExitRecipe(method="joint", lr=0.5, backbone_epochs=epochs, ee_epochs=epochs)
    train, valid = _loaders()
    module = EarlyExitLitModule(net, recipe, phase, 0, train, valid)
    record = _Record(phase)
    with quiet():
        quiet_trainer(max_epochs=epochs, callbacks=[record]).fit(module)
    assert module.kept is not None and len(record.epochs) == epochs
    n = len(record.epochs)
    if phase == "joint":  # the best final-exit accuracy, the later epoch on ties
        best = max(range(n), key=lambda i: (record.epochs[i][0], i))
    else:  # the lowest final-exit loss
        best = min(range(n), key=lambda i: (record.epochs[i][1], -i))
    assert module.kept.epoch == best
    assert module.kept.accuracy == pytest.approx(record.epochs[best][0])
    kept = {k.removeprefix("net."): v for k, v in record.epochs[best][2].items()}
    assert _same(_state(net), kept)


def test_same_seed_same_result_other_seed_other_result() -> None:
    recipe = EarlyExitRecipe(
        method="binary", backbone_epochs=1, warmup_ee_epochs=1, ee_epochs=1, mmax=1.5
    )

    def run(seed: int) -> tuple[dict[str, torch.Tensor], Any]:
        net = _net(binary=True)
        res = train_early_exit(net, recipe, *_loaders(), seed=seed)
        return _state(net), res

    a, res_a = run(0)
    b, res_b = run(0)
    c, _ = run(1)
    assert _same(a, b) and res_a == res_b
    assert not _same(a, c)


def test_an_explicit_support_split_and_module_checks() -> None:
    train, valid = _loaders()
    recipe = EarlyExitRecipe(method="binary", backbone_epochs=0, warmup_ee_epochs=0, ee_epochs=1)
    with pytest.raises(ValueError, match="SupportSplit"):
        EarlyExitLitModule(_net(True), recipe, "binary", 0, train, valid)
    with pytest.raises(TypeError, match="ExitNetwork"):
        EarlyExitLitModule(nn.Linear(2, 2), recipe, "binary", 0, train, valid)
    split = SupportSplit(train, N_CLASSES, seed=5, targets=_data(160, 0).tensors[1])
    res = train_early_exit(_net(True), recipe, train, valid, seed=0, support=split)
    assert res.support_conf is not None
    with pytest.raises(ValueError, match="early_exit.method"):
        EarlyExitRecipe(method="bernulli")
