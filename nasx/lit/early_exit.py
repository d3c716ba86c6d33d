"""Thin Lightning shell around early-exit training: the `EarlyExitRecipe` says what one step does.

`EarlyExitLitModule` runs one phase of the recipe; `train_early_exit` runs every phase with
quiet Trainers (no checkpoints, progress bars or loggers: a candidate evaluation inside a
search), then tunes or evaluates the exit thresholds on the kept state's validation outputs.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from typing_extensions import Self

from nasx.early_exit.losses import support_matrix
from nasx.early_exit.recipe import EarlyExitRecipe, ExitNetwork
from nasx.early_exit.rules import class_logits
from nasx.early_exit.support import SupportSplit, dataset_targets
from nasx.early_exit.tuning import ExitEvaluation, evaluate_thresholds, exit_ece, tune_thresholds

#: ``trainer_factory(max_epochs=..., reload_dataloaders_every_n_epochs=...)``
TrainerFactory = Callable[..., L.Trainer]


@dataclass(frozen=True)
class KeptState:
    """The validated epoch a phase keeps, with its validation outputs (on the CPU).

    Attributes:
        epoch: the epoch (``-1``: a validation without training).
        accuracy: final-exit validation accuracy (fraction).
        loss: final-exit validation cross-entropy.
        outputs: every exit's output on the validation set.
        targets: the validation labels.
        state: the network's state dict at that epoch (CPU copies).
    """

    epoch: int
    accuracy: float
    loss: float
    outputs: list[torch.Tensor]
    targets: torch.Tensor
    state: dict[str, torch.Tensor]


class EarlyExitLitModule(L.LightningModule):
    """Trains an early-exit network through one phase of its `EarlyExitRecipe`.

    Every epoch is validated; the phase keeps the epoch with the lowest final-exit loss
    (``backbone``) or the best final-exit accuracy, the later one on ties (``joint``,
    ``binary``), and loads it back when the fit ends (`kept`). Dropout and shuffling depend
    only on ``(seed, phase_index, step)`` (`EarlyExitRecipe.step_seed`). Single device only.

    Args:
        net: the network (an `nasx.early_exit.recipe.ExitNetwork`).
        recipe: the training recipe.
        phase: ``backbone``, ``joint`` or ``binary``.
        seed: the run seed.
        train_loader: the training batches.
        valid_loader: the validation batches.
        support: NACHOS's per-epoch support draws (needed when the recipe uses them).
        phase_index: the phase's position in the recipe (seeds differ per phase).
    """

    def __init__(
        self,
        net: nn.Module,
        recipe: EarlyExitRecipe,
        phase: str,
        seed: int,
        train_loader: DataLoader[Any],
        valid_loader: DataLoader[Any],
        support: SupportSplit | None = None,
        phase_index: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(net, ExitNetwork):
            raise TypeError(f"{type(net).__name__} is not an early-exit network (ExitNetwork)")
        if recipe.uses_support(phase, recipe.exit_epochs - 1) and support is None:
            raise ValueError("the NACHOS phase with support_set needs a SupportSplit")
        self.net = net
        self.recipe, self.phase, self.seed, self.phase_index = recipe, phase, int(seed), phase_index
        self.train_data, self.valid_data, self.support_split = train_loader, valid_loader, support
        self.kept: KeptState | None = None
        self.support: torch.Tensor | None = None
        self._frozen = recipe.frozen_modules(net, phase)
        self._val_outputs: list[list[torch.Tensor]] = []
        self._val_targets: list[torch.Tensor] = []

    @property
    def exits(self) -> ExitNetwork:
        """The network as an `ExitNetwork`."""
        return cast(ExitNetwork, self.net)

    def train(self, mode: bool = True) -> Self:
        """Train mode, but the frozen backbone modules stay in eval mode."""
        super().train(mode)
        if mode:
            for module in self._frozen:
                module.eval()
        return self

    # --- data ------------------------------------------------------------------------------
    def _support_epoch(self) -> bool:
        return self.support_split is not None and self.recipe.uses_support(
            self.phase, self.current_epoch
        )

    def train_dataloader(self) -> DataLoader[Any]:
        if self._support_epoch():
            assert self.support_split is not None
            return self.support_split.train_loader(self.current_epoch)
        return self.train_data

    def val_dataloader(self) -> DataLoader[Any]:
        return self.valid_data

    # --- training --------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        # Lightning keeps the modes it finds: train mode here, the frozen modules excepted
        self.train()
        torch.manual_seed(self.recipe.step_seed(self.seed, self.phase_index, "fit", 0))

    def on_train_epoch_start(self) -> None:
        seed = self.recipe.step_seed(self.seed, self.phase_index, "epoch", self.current_epoch)
        torch.manual_seed(seed)
        self.support = self._support_matrix() if self._support_epoch() else None

    @torch.no_grad()
    def _support_matrix(self) -> torch.Tensor:
        """``S[class, exit]`` on this epoch's support draw (eval mode, then train again)."""
        assert self.support_split is not None
        self.net.eval()
        logits, targets = [], []
        for x, y in self.support_split.support_loader(self.current_epoch):
            outputs = self.exits(x.to(self.device))
            last = len(outputs) - 1
            logits.append(
                torch.stack(
                    [
                        class_logits(o, self.exits.rule, b == last).float()
                        for b, o in enumerate(outputs)
                    ],
                    dim=1,
                )
            )
            targets.append(y.to(self.device))
        self.train()
        return support_matrix(torch.cat(logits), torch.cat(targets), self.support_split.n_classes)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        seed = self.recipe.step_seed(self.seed, self.phase_index, "step", self.global_step)
        torch.manual_seed(seed)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        loss, terms = self.recipe.loss(self.exits, x, y, self.phase, self.support)
        prefix = f"early_exit/{self.phase}"
        self.log(f"{prefix}/loss", loss, on_step=True, on_epoch=True, batch_size=len(y))
        for name, value in terms.items():
            self.log(f"{prefix}/{name}", value, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    # --- validation ------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_outputs, self._val_targets = [], []

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        outputs = self.exits(x)
        self._val_outputs.append([o.detach().float().cpu() for o in outputs])
        self._val_targets.append(y.detach().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        outputs = [torch.cat(parts) for parts in zip(*self._val_outputs, strict=True)]
        targets = torch.cat(self._val_targets)
        self._val_outputs, self._val_targets = [], []
        final = outputs[-1]
        accuracy = float((final.argmax(1) == targets).double().mean())
        loss = float(F.cross_entropy(final, targets))
        self.log(f"early_exit/{self.phase}/val_acc", accuracy)
        self.log(f"early_exit/{self.phase}/val_loss", loss)
        epoch = self.current_epoch if self.trainer.state.fn == TrainerFn.FITTING else -1
        if self.kept is not None:
            if self.phase == "backbone" and loss > self.kept.loss:
                return
            if self.phase != "backbone" and accuracy < self.kept.accuracy:
                return
        state = {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}
        self.kept = KeptState(epoch, accuracy, loss, outputs, targets, state)

    def on_fit_end(self) -> None:
        if self.kept is not None:
            self.net.load_state_dict(self.kept.state)

    def configure_optimizers(self) -> Any:
        epochs = int(self.trainer.max_epochs or 1) if self._trainer is not None else 1
        return self.recipe.configure_optimizers(self.exits, self.phase, epochs)


@contextmanager
def quiet() -> Iterator[None]:
    """Silence Lightning's banners, "fit stopped" lines and loader-worker hints."""
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = rank_zero.level
    rank_zero.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PossibleUserWarning)
            yield
    finally:
        rank_zero.setLevel(level)


def quiet_trainer(
    max_epochs: int,
    reload_dataloaders_every_n_epochs: int = 0,
    accelerator: Any = "cpu",
    devices: Any = 1,
    precision: Any = "32-true",
    callbacks: list[L.Callback] | None = None,
    limit_train_batches: int | None = None,
) -> L.Trainer:
    """A Trainer for a candidate's training: no checkpoints, progress bar, logger or summary.

    ``limit_train_batches`` caps each training epoch (a CPU budget; ``None``: every batch).
    """
    with quiet():
        return L.Trainer(
            accelerator=accelerator,
            devices=devices,
            precision=precision,
            max_epochs=max_epochs,
            limit_train_batches=1.0 if limit_train_batches is None else limit_train_batches,
            reload_dataloaders_every_n_epochs=reload_dataloaders_every_n_epochs,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=callbacks,
        )


def trainer_factory_like(trainer: L.Trainer) -> TrainerFactory:
    """`quiet_trainer` on ``trainer``'s device and precision (e.g. ``LightningRunner.trainer``)."""
    device = trainer.strategy.root_device

    def factory(**kwargs: Any) -> L.Trainer:
        return quiet_trainer(
            accelerator=trainer.accelerator,
            devices=[device.index] if device.index is not None else 1,
            precision=trainer.precision_plugin.precision,
            **kwargs,
        )

    return factory


@dataclass(frozen=True)
class EarlyExitResult:
    """What training an early-exit network gives (CNAS ``net_i.stats`` numbers).

    Attributes:
        evaluation: the thresholds and their validation scores (a
            `nasx.early_exit.tuning.TuningResult` when the recipe tunes them).
        backbone_accuracy: final-exit validation accuracy after the backbone phase.
        final_accuracy: final-exit validation accuracy of the kept exit-phase epoch.
        kept_epoch: that epoch (``-1``: the exit phase had no epochs).
        ece: per-exit expected calibration error on the validation set.
        support_conf: the last support matrix averaged over classes (per exit), or ``None``.
    """

    evaluation: ExitEvaluation
    backbone_accuracy: float
    final_accuracy: float
    kept_epoch: int
    ece: tuple[float, ...]
    support_conf: tuple[float, ...] | None


def _run_phase(module: EarlyExitLitModule, epochs: int, factory: TrainerFactory) -> KeptState:
    reload = 1 if module.support_split is not None and module.phase == "binary" else 0
    with quiet():
        trainer = factory(max_epochs=max(1, epochs), reload_dataloaders_every_n_epochs=reload)
        if epochs > 0:
            trainer.fit(module)
        else:
            trainer.validate(module, verbose=False)
    if module.kept is None:
        raise RuntimeError("early-exit training saw no validation batch: the loader is empty")
    return module.kept


def train_early_exit(
    net: nn.Module,
    recipe: EarlyExitRecipe,
    train_loader: DataLoader[Any],
    valid_loader: DataLoader[Any],
    *,
    seed: int,
    support: SupportSplit | None = None,
    trainer_factory: TrainerFactory | None = None,
) -> EarlyExitResult:
    """Train ``net`` in place through every phase of ``recipe``, then set up its exits.

    The network ends in the kept state of the exit phase, in eval mode. When
    ``recipe.tune_epsilon`` and the method is ``binary``, the thresholds are tuned (and
    repaired) by `nasx.early_exit.tuning.tune_thresholds` with the cumulative rule and written
    to ``net.thresholds``; otherwise the network's own ``thresholds`` are evaluated under its
    own ``rule``.

    Args:
        net: an `nasx.early_exit.recipe.ExitNetwork` module.
        recipe: the training recipe.
        train_loader: training batches.
        valid_loader: validation batches (checkpoint selection, tuning and the stats).
        seed: the run seed (the same seed, network and loaders give the same result).
        support: NACHOS's support draws (default: `SupportSplit` over ``train_loader``'s
            dataset with ``recipe.support_fraction``, the classes read from its labels).
        trainer_factory: builds each phase's Trainer from ``max_epochs`` and
            ``reload_dataloaders_every_n_epochs`` (default `quiet_trainer` on the CPU; see
            `trainer_factory_like`).
    """
    if not isinstance(net, ExitNetwork):
        raise TypeError(f"{type(net).__name__} is not an early-exit network (ExitNetwork)")
    factory = quiet_trainer if trainer_factory is None else trainer_factory
    needs_support = recipe.uses_support("binary", recipe.exit_epochs - 1)
    if support is None and recipe.method == "binary" and needs_support:
        targets = dataset_targets(train_loader.dataset)
        n_classes = int(targets.max()) + 1
        support = SupportSplit(train_loader, n_classes, seed, recipe.support_fraction, targets)
    kept: list[KeptState] = []
    support_conf: tuple[float, ...] | None = None
    for index, (phase, epochs) in enumerate(recipe.phases()):
        module = EarlyExitLitModule(
            net,
            recipe,
            phase,
            seed,
            train_loader,
            valid_loader,
            support=support if phase == "binary" else None,
            phase_index=index,
        )
        kept.append(_run_phase(module, epochs, factory))
        if module.support is not None:
            support_conf = tuple(module.support.mean(0).tolist())
    net.eval()
    last = kept[-1]
    exits = cast(ExitNetwork, net)
    costs = recipe.costs(exits)
    evaluation: ExitEvaluation
    if recipe.method == "binary" and recipe.tune_epsilon:
        evaluation = tune_thresholds(
            last.outputs, last.targets, costs, mmax=recipe.mmax, top1min=recipe.top1min
        )
        # the network's own setter (EarlyExitNetwork.thresholds)
        setattr(net, "thresholds", evaluation.thresholds)  # noqa: B010
    else:
        if exits.thresholds is None:
            raise ValueError(
                f"{type(net).__name__} has no thresholds to evaluate: set them, or tune them "
                "(method=binary, tune_epsilon=true)"
            )
        evaluation = evaluate_thresholds(
            last.outputs, last.targets, list(exits.thresholds), costs, exits.rule
        )
    ece = exit_ece(last.outputs, last.targets, exits.rule, recipe.ece_bins)
    return EarlyExitResult(
        evaluation=evaluation,
        backbone_accuracy=kept[0].accuracy,
        final_accuracy=last.accuracy,
        kept_epoch=last.epoch,
        ece=tuple(ece),
        support_conf=support_conf,
    )
