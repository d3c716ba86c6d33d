"""How an early-exit network is trained (EDANAS ``joint``, NACHOS ``binary``): the plain math.

`EarlyExitRecipe` says which phases run, which parameters each phase trains, its optimiser
and schedule, and the loss of one step; `nasx.lit.early_exit` is the thin Lightning shell that
runs the phases (``train_early_exit``). Reference ``seed-nsganetv2-cnas.md`` §6.3 "EDANAS
trainer" and §6.4 "NACHOS trainer".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nasx.early_exit.losses import joint_loss, nachos_loss
from nasx.early_exit.rules import ExitRule, class_logits

#: training methods: EDANAS (``joint``: every exit's CE, backbone trained) and NACHOS
#: (``binary``: learned confidences, backbone frozen)
METHODS = ("joint", "binary")
#: ``backbone``: the backbone and final exit with CE; then the method's exit phase
PHASES = ("backbone", "joint", "binary")


@runtime_checkable
class ExitNetwork(Protocol):
    """What training needs of an early-exit network (`nasx.early_exit.network`).

    ``forward`` returns every exit's output, final exit last: an intermediate binary exit
    gives ``n_classes + 1`` values (the last one its confidence logit), the final exit
    ``n_classes`` logits. ``backbone_grad=False`` runs the backbone under ``no_grad``.
    ``head_parameters`` are the parameters of every exit head, the final one included.
    """

    @property
    def n_exits(self) -> int:
        """Number of exits, the final one included."""
        ...

    @property
    def exit_costs(self) -> Sequence[float]:
        """M MACs per exit (backbone up to the exit plus its head), final last."""
        ...

    @property
    def inference_costs(self) -> Sequence[float]:
        """M MACs a sample leaving at each exit executes (the heads it passed included)."""
        ...

    @property
    def thresholds(self) -> Sequence[float] | None:
        """One threshold per intermediate exit (``None``: not set yet)."""
        ...

    @property
    def rule(self) -> ExitRule:
        """The exit rule (`nasx.early_exit.rules`)."""
        ...

    def __call__(self, x: torch.Tensor, backbone_grad: bool = True) -> list[torch.Tensor]:
        """Every exit's output."""
        ...

    def parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter (``nn.Module.parameters``)."""
        ...

    def backbone_parameters(self) -> Iterable[nn.Parameter]:
        """The backbone's parameters."""
        ...

    def head_parameters(self) -> Iterable[nn.Parameter]:
        """Every exit head's parameters."""
        ...


@dataclass(frozen=True)
class EarlyExitRecipe:
    """Training of an early-exit network: a backbone phase, then the method's exit phase.

    1. ``backbone`` (``backbone_epochs``; 0: only validated): backbone and final exit with
       cross-entropy on the final exit, SGD and a per-epoch cosine from ``lr`` to 0; the
       epoch with the lowest final-exit validation loss is kept (CNAS ``train``).
    2. ``joint`` (EDANAS, ``ee_epochs``): backbone and every exit together on
       `nasx.early_exit.losses.joint_loss`, constant LR.
       ``binary`` (NACHOS, ``warmup_ee_epochs + ee_epochs``): the backbone frozen (its forward
       under ``no_grad``, the optimiser over the head parameters only) and the exits trained
       on `nasx.early_exit.losses.nachos_loss`, constant LR (the reference's StepLR with
       gamma 1). With ``support_set`` the support term starts at epoch ``warmup_ee_epochs``
       (``n_epoch_gamma``). The epoch with the best final-exit validation accuracy is kept.

    Script values: EDANAS ``scripts/search_edanas.sh``: ``method=joint``,
    ``backbone_epochs=0``, ``ee_epochs=5``, no tuning. NACHOS ``scripts/search_nachos*.sh``
    (the defaults here): ``backbone_epochs=10``, ``warmup_ee_epochs=5``, ``ee_epochs=5``,
    ``support_set``, ``tune_epsilon``, weights 1, ``mmax=2.7``, ``top1min=0.65``.

    Attributes:
        method: ``joint`` or ``binary``.
        backbone_epochs: epochs of the backbone phase.
        warmup_ee_epochs: NACHOS exit epochs before the support term.
        ee_epochs: EDANAS exit epochs; NACHOS exit epochs with the support term.
        lr, momentum, weight_decay: the SGD of every phase.
        w_alpha, w_beta, w_gamma: NACHOS's classification, energy and support weights.
        mmax: the MAC limit (M MACs; ``None``: no energy term and no repair).
        top1min: the accuracy floor (fraction) of the threshold repair.
        support_set: NACHOS's support term (``False``: the ``*_nopeak`` ablation).
        support_fraction: share of the training set drawn as support each epoch.
        energy_grad: see `nasx.early_exit.losses.energy_loss` (``False``: the reference's
            gradient-free energy term).
        tune_epsilon: tune the thresholds after training (NACHOS,
            `nasx.early_exit.tuning.tune_thresholds`); otherwise the network's own.
        freeze_backbone_bn: in the NACHOS phase, run the backbone's modules in eval mode, so
            nothing of the backbone changes. The reference keeps them in train mode: its
            BatchNorm running statistics drift although no weight is trained (``False``).
        ece_bins: bins of the per-exit ECE in the results.
        executed_costs: the per-exit costs that ``avg_macs``, the energy loss and the repair
            weigh (`costs`): ``True``, what a sample leaving at an exit executes, the heads of
            the exits it passed included (`EarlyExitNetwork.inference_costs`; what inference
            really spends); ``False``, CNAS's ``backbone to the exit + its own head``
            (``exit_costs``), which leaves the heads already passed out.
    """

    method: str = "binary"
    backbone_epochs: int = 10
    warmup_ee_epochs: int = 5
    ee_epochs: int = 5
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-5
    w_alpha: float = 1.0
    w_beta: float = 1.0
    w_gamma: float = 1.0
    mmax: float | None = None
    top1min: float = 0.0
    support_set: bool = True
    support_fraction: float = 0.1
    energy_grad: bool = True
    tune_epsilon: bool = True
    freeze_backbone_bn: bool = True
    ece_bins: int = 30
    executed_costs: bool = True

    def __post_init__(self) -> None:
        checks = [
            (self.method in METHODS, f"early_exit.method={self.method!r}: use joint or binary"),
            (
                min(self.backbone_epochs, self.warmup_ee_epochs, self.ee_epochs) >= 0,
                "early_exit epochs must be >= 0",
            ),
            (self.lr > 0, "early_exit.lr must be > 0"),
            (self.momentum >= 0 and self.weight_decay >= 0, "momentum/weight_decay >= 0"),
            (0.0 < self.support_fraction < 1.0, "early_exit.support_fraction in (0, 1)"),
            (0.0 <= self.top1min <= 1.0, "early_exit.top1min is a fraction in [0, 1]"),
            (self.mmax is None or self.mmax > 0, "early_exit.mmax must be > 0 or null"),
            (self.ece_bins >= 1, "early_exit.ece_bins must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    def costs(self, net: ExitNetwork) -> list[float]:
        """The per-exit costs this recipe weighs (see ``executed_costs``)."""
        return list(net.inference_costs if self.executed_costs else net.exit_costs)

    # --- phases ----------------------------------------------------------------------------
    def phases(self) -> list[tuple[str, int]]:
        """``[(phase, epochs), ...]`` in order: the backbone phase, then the exit phase."""
        if self.method == "binary":
            return [("backbone", self.backbone_epochs), ("binary", self.exit_epochs)]
        return [("backbone", self.backbone_epochs), ("joint", self.exit_epochs)]

    @property
    def exit_epochs(self) -> int:
        """Epochs of the exit phase (EDANAS trains ``ee_epochs`` only)."""
        if self.method == "binary":
            return self.warmup_ee_epochs + self.ee_epochs
        return self.ee_epochs

    def uses_support(self, phase: str, epoch: int) -> bool:
        """Whether ``epoch`` of ``phase`` draws a support set (from ``n_epoch_gamma`` on)."""
        return phase == "binary" and self.support_set and epoch >= self.warmup_ee_epochs

    @staticmethod
    def step_seed(seed: int, phase_index: int, where: str, count: int) -> int:
        """The torch seed of a phase's start, an epoch's start or an optimiser step.

        ``where`` is ``fit``, ``epoch`` or ``step``; ``count`` counts epochs or steps from 0.
        """
        kind = ("fit", "epoch", "step").index(where)
        return int(np.random.SeedSequence([seed, phase_index, kind, count]).generate_state(1)[0])

    # --- optimisation ----------------------------------------------------------------------
    def trainable(self, net: ExitNetwork, phase: str) -> list[nn.Parameter]:
        """The parameters ``phase`` optimises (NACHOS: the exit heads only).

        The backbone phase optimises everything: only the final exit's loss is used, so the
        intermediate heads get no gradient and SGD leaves them alone.
        """
        if phase == "binary":
            return [p for p in net.head_parameters() if p.requires_grad]
        return [p for p in net.parameters() if p.requires_grad]

    def configure_optimizers(self, net: ExitNetwork, phase: str, epochs: int) -> dict[str, Any]:
        """Lightning's ``configure_optimizers`` dict of ``phase`` (``epochs`` long)."""
        opt = torch.optim.SGD(
            self.trainable(net, phase),
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
        )
        if phase != "backbone":
            return {"optimizer": opt}
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def frozen_modules(self, net: nn.Module, phase: str) -> list[nn.Module]:
        """The backbone modules kept in eval mode during ``phase`` (see ``freeze_backbone_bn``).

        These are the largest submodules whose parameters are all backbone parameters.
        """
        if phase != "binary" or not self.freeze_backbone_bn or not isinstance(net, ExitNetwork):
            return []
        backbone = {id(p) for p in net.backbone_parameters()}
        found: list[tuple[str, nn.Module]] = []
        for name, module in net.named_modules():  # parents before their children
            if any(name.startswith(f"{kept}.") or not kept for kept, _ in found):
                continue
            params = [id(p) for p in module.parameters()]
            if params and all(p in backbone for p in params):
                found.append((name, module))
        return [module for _, module in found]

    # --- one step --------------------------------------------------------------------------
    def loss(
        self,
        net: ExitNetwork,
        x: torch.Tensor,
        y: torch.Tensor,
        phase: str,
        support: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The step's loss and its named terms (detached, for logging).

        Args:
            net: the early-exit network (train mode).
            x: the batch's inputs.
            y: the batch's labels.
            phase: ``backbone``, ``joint`` or ``binary``.
            support: the epoch's support matrix (``binary`` only; ``None``: no support term).
        """
        if phase == "binary":
            outputs = net(x, backbone_grad=False)
            terms = nachos_loss(
                outputs,
                y,
                self.costs(net),
                w_alpha=self.w_alpha,
                w_beta=self.w_beta,
                w_gamma=self.w_gamma,
                mmax=self.mmax,
                energy_grad=self.energy_grad,
                support=support,
            )
            logged = {
                "classification": terms.classification,
                "bce": terms.bce,
                "energy": terms.energy,
                "support": terms.support,
            }
            return terms.total, {k: v.detach() for k, v in logged.items()}
        outputs = net(x)
        if phase == "backbone":
            loss = F.cross_entropy(outputs[-1], y)
            return loss, {}
        last = len(outputs) - 1
        logits = [class_logits(o, net.rule, b == last) for b, o in enumerate(outputs)]
        return joint_loss(logits, y), {}
