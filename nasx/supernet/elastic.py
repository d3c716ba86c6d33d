"""Recipes for elastic supernets: the sandwich rule and OFA's progressive shrinking.

Both recipes need an elastic supernet (`ElasticSupernet`: OFA-style choices of kernel size
``ks``, expand ratio ``e`` and depth ``d``, plus its largest and smallest sub-network) and
train the small sub-networks by distillation from the full network's predictions:

- `SandwichRecipe` (``supernet=sandwich``): every step trains the largest, the smallest and a
  few random sub-networks; the largest learns from the labels, the others from its detached
  predictions (Yu & Huang's sandwich rule and in-place distillation, as BigNAS (Yu et al.,
  ECCV 2020) and AttentiveNAS (Wang et al., CVPR 2021) train).
- `ProgressiveShrinkingRecipe` (``supernet=progressive_shrinking``): the full network first,
  then phases that open one dimension after another (Once-for-All, Cai et al., ICLR 2020).

The step's paths depend only on the run seed and the global step, like every recipe's, so
every DDP rank and a resumed run draw the same sub-networks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nasx.errors import NasxError
from nasx.supernet.base import Supernet
from nasx.supernet.recipe import OptimizerFactory, SchedulerFactory, TrainingRecipe

#: distillation losses: soft-target cross-entropy on the teacher's softmax, or MSE on logits
KD_TYPES = ("ce", "mse")


@runtime_checkable
class ElasticSupernet(Protocol):
    """What the elastic recipes need of a supernet beyond the `Supernet` contract.

    A path is a dict ``{"ks": [...], "e": [...], "d": [...], "r": int}``. ``forward`` does not
    resize; the recipes hand each path the batch at its ``r`` (`TrainingRecipe.inputs_for`).
    """

    def sample_path(
        self,
        rng: np.random.Generator,
        ks: Sequence[int] | None = None,
        e: Sequence[int] | None = None,
        d: Sequence[int] | None = None,
        r: Sequence[int] | None = None,
    ) -> dict[str, Any]:
        """A uniform sub-network restricted to the given choices (``None``: all of them)."""
        ...

    def largest_path(self) -> dict[str, Any]:
        """The full network: the largest choice everywhere."""
        ...

    def smallest_path(self) -> dict[str, Any]:
        """The smallest choice everywhere."""
        ...


def soft_target_cross_entropy(logits: torch.Tensor, soft_target: torch.Tensor) -> torch.Tensor:
    """Batch mean of ``-sum(soft_target * log_softmax(logits))`` (OFA's soft-target loss)."""
    return torch.sum(-soft_target * F.log_softmax(logits, dim=1), dim=1).mean()


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, kd_type: str = "ce"
) -> torch.Tensor:
    """The student's loss against the teacher's logits; no gradient reaches the teacher.

    Args:
        student: the student's logits.
        teacher: the teacher's logits (detached here).
        kd_type: ``ce`` (cross-entropy on the teacher's softmax) or ``mse`` (on the logits),
            OFA's two ``kd_type`` options.
    """
    target = teacher.detach()
    if kd_type == "ce":
        return soft_target_cross_entropy(student, F.softmax(target, dim=1))
    if kd_type == "mse":
        return F.mse_loss(student, target)
    raise ValueError(f"kd_type={kd_type!r}: use one of {', '.join(KD_TYPES)}")


class _DistillingRecipe(TrainingRecipe):
    """Shared part of the elastic recipes: the distillation settings and the student loss."""

    #: the ``supernet=`` option, named in errors
    option = "elastic"

    def __init__(
        self,
        epochs: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None,
        scheduler_interval: str,
        grad_clip: float | None,
        grad_clip_algorithm: str,
        random_labels: bool,
        label_smoothing: float,
        kd_ratio: float,
        kd_type: str,
        kd_with_labels: bool,
    ) -> None:
        super().__init__(
            epochs,
            optimizer,
            scheduler,
            scheduler_interval,
            grad_clip,
            grad_clip_algorithm,
            random_labels,
            label_smoothing,
        )
        if kd_type not in KD_TYPES:
            raise ValueError(f"supernet.kd_type={kd_type!r}: use one of {', '.join(KD_TYPES)}")
        if kd_ratio < 0:
            raise ValueError(f"supernet.kd_ratio={kd_ratio}: use a value >= 0")
        if kd_ratio == 0 and not kd_with_labels:
            raise ValueError(
                "supernet.kd_ratio=0 with kd_with_labels=false gives the sub-networks no loss: "
                "set kd_ratio > 0 or kd_with_labels=true"
            )
        self.kd_ratio, self.kd_type, self.kd_with_labels = float(kd_ratio), kd_type, kd_with_labels

    def elastic(self, supernet: Supernet) -> ElasticSupernet:
        """``supernet`` as an `ElasticSupernet`, or a `NasxError` naming the fix."""
        if not isinstance(supernet, ElasticSupernet):
            raise NasxError(
                f"supernet={self.option} needs an elastic supernet (space=ofa_mbv3...): "
                f"{type(supernet).__name__} has no largest_path/smallest_path; pick such a "
                "space, or supernet=spos for this one"
            )
        return supernet

    def label_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on the labels with the recipe's label smoothing."""
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)

    def student_loss(
        self, logits: torch.Tensor, teacher: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """``kd_ratio * distillation`` (plus the label loss if ``kd_with_labels``)."""
        loss = torch.zeros((), device=logits.device)
        if self.kd_ratio > 0:
            loss = self.kd_ratio * distillation_loss(logits, teacher, self.kd_type)
        if self.kd_with_labels:
            loss = loss + self.label_loss(logits, y)
        return loss


class SandwichRecipe(_DistillingRecipe):
    """The sandwich rule with in-place distillation (US-Nets, BigNAS, AttentiveNAS).

    Each step trains the largest path, the smallest path and ``n_random`` uniform paths
    (drawn from ``np.random.default_rng([seed, step])``). The largest learns from the labels
    (cross-entropy with the recipe's label smoothing); every other path learns from the
    largest's detached predictions. The losses are summed, so one backward accumulates every
    path's gradient, as the papers' per-path ``backward`` calls do (at the memory cost of
    holding all graphs until then). Each path sees the batch at its own resolution
    (`TrainingRecipe.inputs_for`), as BigNAS trains each child at its own resolution.

    Defaults: ``n_random=2`` (BigNAS and AttentiveNAS train four paths a step: largest,
    smallest, two random), ``kd_type="ce"`` (US-Nets/BigNAS soft-target cross-entropy;
    AttentiveNAS's soft KL divergence has the same gradient), ``kd_ratio=1`` and
    ``kd_with_labels=False`` (BigNAS: the children learn from the in-place teacher only).
    nasx samples the random paths uniformly (BigNAS), not AttentiveNAS's Pareto-attentive way.

    Args:
        epochs: training epochs.
        optimizer: ``optimizer(params)`` (a ``_partial_`` node).
        scheduler: ``scheduler(optimizer)`` (a ``_partial_`` node) or ``None``.
        scheduler_interval: ``epoch`` or ``step``.
        grad_clip: gradient clip value (``None``: none).
        grad_clip_algorithm: ``norm`` or ``value``.
        random_labels: train on one fixed random label per image (RLNAS).
        label_smoothing: label smoothing of every label loss (BigNAS/AttentiveNAS: 0.1).
        n_random: random paths per step besides the largest and the smallest.
        kd_ratio: weight of the distillation loss of the non-largest paths.
        kd_type: ``ce`` (soft-target cross-entropy) or ``mse`` (on the logits).
        kd_with_labels: add the label loss to the distillation loss of the non-largest paths.
    """

    option = "sandwich"

    def __init__(
        self,
        epochs: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        grad_clip: float | None = None,
        grad_clip_algorithm: str = "norm",
        random_labels: bool = False,
        label_smoothing: float = 0.0,
        n_random: int = 2,
        kd_ratio: float = 1.0,
        kd_type: str = "ce",
        kd_with_labels: bool = False,
    ) -> None:
        super().__init__(
            epochs,
            optimizer,
            scheduler,
            scheduler_interval,
            grad_clip,
            grad_clip_algorithm,
            random_labels,
            label_smoothing,
            kd_ratio,
            kd_type,
            kd_with_labels,
        )
        if n_random < 0:
            raise ValueError(f"supernet.n_random={n_random}: use a value >= 0")
        self.n_random = n_random

    def paths(self, supernet: Supernet, seed: int, step: int) -> list[Any]:
        """``[largest, smallest, *n_random uniform paths]``, a pure function of seed and step."""
        net = self.elastic(supernet)
        rng = np.random.default_rng([seed, step])
        randoms = [net.sample_path(rng) for _ in range(self.n_random)]
        return [net.largest_path(), net.smallest_path(), *randoms]

    def loss(
        self, supernet: Supernet, x: torch.Tensor, y: torch.Tensor, paths: list[Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Label loss of ``paths[0]`` plus each other path's distillation from it.

        Returns:
            The summed loss and the logits of ``paths[0]`` (the largest).
        """
        teacher = supernet(self.inputs_for(x, paths[0]), paths[0])
        total = self.label_loss(teacher, y)
        for path in paths[1:]:
            logits = supernet(self.inputs_for(x, path), path)
            total = total + self.student_loss(logits, teacher, y)
        return total, teacher


@dataclass(frozen=True)
class Phase:
    """One phase of progressive shrinking: its length and the choices it samples from.

    Args:
        epochs: the phase's length in epochs (>= 1).
        ks: kernel sizes sampled (``None``: all). The first phase trains the full network
            and leaves ``ks``, ``e`` and ``d`` unset.
        e: expand ratios sampled (``None``: all).
        d: depths sampled (``None``: all).
        dynamic_batch_size: sub-networks per step (``None``: the recipe's
            ``dynamic_batch_size``).
    """

    epochs: int
    ks: list[int] | None = None
    e: list[int] | None = None
    d: list[int] | None = None
    dynamic_batch_size: int | None = None


#: OFA's schedule for MobileNetV3 with the paper's epochs (590 in all; Cai et al. 2020, Fig. 3
#: and ``train_ofa_net.py``): full network, elastic kernel, elastic depth, elastic expand
OFA_PHASES = (
    Phase(180),
    Phase(120, ks=[3, 5, 7], e=[6], d=[4], dynamic_batch_size=1),
    Phase(25, ks=[3, 5, 7], e=[6], d=[3, 4], dynamic_batch_size=2),
    Phase(120, ks=[3, 5, 7], e=[6], d=[2, 3, 4], dynamic_batch_size=2),
    Phase(25, ks=[3, 5, 7], e=[4, 6], d=[2, 3, 4], dynamic_batch_size=4),
    Phase(120, ks=[3, 5, 7], e=[3, 4, 6], d=[2, 3, 4], dynamic_batch_size=4),
)


def _as_phase(i: int, value: Phase | Mapping[str, Any]) -> Phase:
    """``value`` (a `Phase`, or a config mapping of its fields) as a checked `Phase`."""
    if isinstance(value, Phase):
        phase = value
    else:
        names = {f.name for f in fields(Phase)}
        unknown = sorted(str(k) for k in value if str(k) not in names)
        if unknown or "epochs" not in value:
            raise ValueError(
                f"supernet.phases[{i}]: keys {sorted(names)} with epochs required; "
                f"got {sorted(str(k) for k in value)}"
            )

        def choices(key: str) -> list[int] | None:
            v = value.get(key)
            return None if v is None else [int(c) for c in v]

        dbs = value.get("dynamic_batch_size")
        phase = Phase(
            int(value["epochs"]),
            choices("ks"),
            choices("e"),
            choices("d"),
            None if dbs is None else int(dbs),
        )
    if phase.epochs < 1:
        raise ValueError(f"supernet.phases[{i}].epochs={phase.epochs}: use a value >= 1")
    if phase.dynamic_batch_size is not None and phase.dynamic_batch_size < 1:
        raise ValueError(
            f"supernet.phases[{i}].dynamic_batch_size={phase.dynamic_batch_size}: use >= 1"
        )
    for key in ("ks", "e", "d"):
        if getattr(phase, key) == []:
            raise ValueError(f"supernet.phases[{i}].{key} is empty: list choices or use null")
    return phase


class ProgressiveShrinkingRecipe(_DistillingRecipe):
    """Once-for-All's progressive shrinking: the full network, then ever wider choices.

    ``phases[0]`` trains the full network (``largest_path()``) on the labels. Each later
    phase trains, every step, ``dynamic_batch_size`` uniform sub-networks within its ``ks``,
    ``e`` and ``d`` choices, each on ``kd_ratio`` times the distillation loss from the full
    network plus (``kd_with_labels``) the label loss, as OFA's ``train_one_epoch`` does.

    The teacher is in-place: the full network's predictions on the same batch, computed under
    ``no_grad`` in train mode (OFA also runs its teacher in train mode). OFA instead keeps a
    frozen copy of the phase-0 network; nasx distils from the current full network, which
    needs no second model in the Lightning checkpoint. The teacher's forward also updates the
    batch-norm running statistics of the full network's path (recalibrate them before
    evaluating, as OFA does). OFA restarts the learning rate (with warm-up) at every phase;
    here one ``scheduler`` spans the whole run. Each path sees the batch at its own
    resolution (`TrainingRecipe.inputs_for`: the teacher at the largest, each sub-network at
    its sampled one); OFA samples one resolution per batch for all of them.

    The phase is decided by the epoch, derived from the global step and the optimiser steps
    per epoch that `configure_optimizers` receives (Lightning calls it before the first step,
    on resume too).

    Defaults follow OFA's ``train_ofa_net.py``: ``kd_ratio=1``, ``kd_type="ce"``,
    ``kd_with_labels=True`` and ``dynamic_batch_size=2`` (OFA's elastic-depth phases; its
    elastic-kernel phase uses 1 and its elastic-expand phases 4, set per phase).

    Args:
        epochs: training epochs; must equal the sum of the phases' epochs.
        optimizer: ``optimizer(params)`` (a ``_partial_`` node).
        scheduler: ``scheduler(optimizer)`` (a ``_partial_`` node) or ``None``.
        scheduler_interval: ``epoch`` or ``step``.
        grad_clip: gradient clip value (``None``: none).
        grad_clip_algorithm: ``norm`` or ``value``.
        random_labels: train on one fixed random label per image (RLNAS).
        label_smoothing: label smoothing of every label loss (OFA: 0.1).
        phases: the schedule, in order (a config gives mappings of `Phase`'s fields); see
            `OFA_PHASES` for the paper's.
        dynamic_batch_size: sub-networks per step of a phase that sets none.
        kd_ratio: weight of the distillation loss; 0 trains the sub-networks on the labels
            only, without a teacher (OFA's ``kd_ratio == 0`` branch).
        kd_type: ``ce`` (soft-target cross-entropy) or ``mse`` (on the logits).
        kd_with_labels: add the label loss to the distillation loss (OFA does).
    """

    option = "progressive_shrinking"

    def __init__(
        self,
        epochs: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        grad_clip: float | None = None,
        grad_clip_algorithm: str = "norm",
        random_labels: bool = False,
        label_smoothing: float = 0.0,
        *,
        phases: list[Phase],
        dynamic_batch_size: int = 2,
        kd_ratio: float = 1.0,
        kd_type: str = "ce",
        kd_with_labels: bool = True,
    ) -> None:
        super().__init__(
            epochs,
            optimizer,
            scheduler,
            scheduler_interval,
            grad_clip,
            grad_clip_algorithm,
            random_labels,
            label_smoothing,
            kd_ratio,
            kd_type,
            kd_with_labels,
        )
        if not phases:
            raise ValueError("supernet.phases is empty: list at least the full-network phase")
        checked = [_as_phase(i, p) for i, p in enumerate(phases)]
        first = checked[0]
        if (first.ks, first.e, first.d, first.dynamic_batch_size) != (None,) * 4:
            raise ValueError(
                "supernet.phases[0] trains the full network (OFA's teacher): give it epochs only"
            )
        total = sum(p.epochs for p in checked)
        if total != epochs:
            raise ValueError(
                f"supernet.epochs={epochs} but the phases' epochs sum to {total}: set "
                f"supernet.epochs={total} or change the phases"
            )
        if dynamic_batch_size < 1:
            raise ValueError(f"supernet.dynamic_batch_size={dynamic_batch_size}: use >= 1")
        self.phases: tuple[Phase, ...] = tuple(checked)
        self.dynamic_batch_size = dynamic_batch_size
        self.steps_per_epoch: int | None = None
        self._ends = np.cumsum([p.epochs for p in checked])

    def phase_index(self, step: int) -> int:
        """Index in `phases` of the phase the global ``step`` belongs to (the last one after)."""
        if self.steps_per_epoch is None:
            raise RuntimeError(
                "ProgressiveShrinkingRecipe.configure_optimizers sets the steps per epoch: "
                "call it before the first step"
            )
        epoch = step // self.steps_per_epoch
        return min(int(np.searchsorted(self._ends, epoch, side="right")), len(self.phases) - 1)

    def paths(self, supernet: Supernet, seed: int, step: int) -> list[Any]:
        """The step's paths: ``[largest]`` in phase 0, else ``[largest, *sub-networks]``.

        In an elastic phase the first path is the teacher (omitted when ``kd_ratio`` is 0);
        the sub-networks are uniform within the phase's choices, drawn from
        ``np.random.default_rng([seed, step])``.
        """
        net = self.elastic(supernet)
        index = self.phase_index(step)
        if index == 0:
            return [net.largest_path()]
        phase = self.phases[index]
        rng = np.random.default_rng([seed, step])
        n = phase.dynamic_batch_size or self.dynamic_batch_size
        subnets = [net.sample_path(rng, ks=phase.ks, e=phase.e, d=phase.d) for _ in range(n)]
        return [net.largest_path(), *subnets] if self.kd_ratio > 0 else subnets

    def loss(
        self, supernet: Supernet, x: torch.Tensor, y: torch.Tensor, paths: list[Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Label loss of a lone path; else each later path's distillation from ``paths[0]``.

        Returns:
            The summed loss and the logits of ``paths[0]`` (the full network's, for the
            logged accuracy).
        """
        if len(paths) == 1 or self.kd_ratio == 0:
            return super().loss(supernet, x, y, paths)
        with torch.no_grad():
            teacher = supernet(self.inputs_for(x, paths[0]), paths[0])
        total = torch.zeros((), device=teacher.device)
        for path in paths[1:]:
            logits = supernet(self.inputs_for(x, path), path)
            total = total + self.student_loss(logits, teacher, y)
        return total, teacher

    def configure_optimizers(
        self, params: Iterable[nn.Parameter], steps_per_epoch: int
    ) -> dict[str, Any]:
        """The base class's optimiser; also keeps ``steps_per_epoch`` to find the phase."""
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch={steps_per_epoch}: use a value >= 1")
        self.steps_per_epoch = int(steps_per_epoch)
        return super().configure_optimizers(params, steps_per_epoch)
