"""EDANAS and NACHOS candidate evaluation: train the exits, measure accuracy and ``avg_macs``.

CNAS's ``ee_train.py`` per candidate: the backbone with inherited weights, an early-exit
network built on it (`nasx.early_exit.EarlyExitNetwork`), the method's training
(`nasx.early_exit.recipe.EarlyExitRecipe`: EDANAS's joint trainer or NACHOS's binary exits
on a frozen backbone, with threshold tuning and repair), then the validation statistics CNAS
writes to ``net_i.stats``. ``avg_macs`` is a measured output (`nasx.objective.AvgMacsObjective`
reads it), and the trained network is exported by `artifacts` (``final/<name>/eenn.pt``).
"""

from __future__ import annotations

from typing import Any

import torch

from nasx.early_exit.network import EarlyExitNetwork
from nasx.early_exit.recipe import EarlyExitRecipe
from nasx.early_exit.tuning import TuningResult
from nasx.errors import NasxError
from nasx.metric.base import Metric, MetricContext
from nasx.search_space.base import Architecture
from nasx.search_space.early_exit import NachosMobileNetV3Space

#: the file `EarlyExitMetric.artifacts` writes into ``final/<name>/``
EENN_FILE = "eenn.pt"


class EarlyExitMetric(Metric):
    """Global top-1 accuracy of a candidate's trained early-exit network (higher is better).

    For each candidate: extract the backbone from the supernet and recalibrate its BN (as
    every nasx weight-sharing metric; CNAS trains from the OFA weights directly), build the
    exits the space's genes ask for (`exit_config`: EDANAS's thresholds, NACHOS's on/off
    switches), train them (`EarlyExitRecipe`), and evaluate on the first ``val_images`` valid
    images with the method's exit rule: EDANAS's score margin against the searched
    thresholds, NACHOS's cumulative confidence against thresholds tuned (and repaired to
    ``avg_macs <= mmax`` while accuracy stays ``>= top1min``) on those images.

    Returns ``accuracy`` (fraction, samples judged where they leave), ``top1_err`` (%, CNAS's
    ``top1``), ``avg_macs`` (M MACs per input, over the costs `EarlyExitRecipe.costs` weighs),
    ``n_exits``, ``exits_ratio``, ``epsilon``
    (the thresholds used), ``branch_scores`` (accuracy of each exit on the samples leaving
    there), ``exit_costs`` (CNAS's: backbone to each exit plus its head), ``inference_costs``
    (what a sample leaving there executes: every head passed too), ``macs`` (the full network),
    ``params`` (M, backbone and every exit), ``backbone_top1`` and ``final_top1`` (final-exit
    accuracy after the backbone phase and after the exit phase, %), ``ece`` (per exit); NACHOS
    also ``grid_epsilon`` (the grid value chosen) and ``repaired`` (1 when repair brought
    ``avg_macs`` within ``mmax``; lowered thresholds that never got there leave it 0).

    Args:
        method: ``joint`` (EDANAS, score-margin rule) or ``binary`` (NACHOS, cumulative rule).
        backbone_epochs, warmup_ee_epochs, ee_epochs, lr, momentum, weight_decay, w_alpha,
            w_beta, w_gamma, mmax, top1min, support_set, support_fraction, energy_grad,
            tune_epsilon, freeze_backbone_bn, executed_costs: `EarlyExitRecipe`'s
            (``executed_costs=false`` reports CNAS's ``avg_macs``, which leaves out the heads
            of the exits a sample passed).
        val_images: valid images for checkpoint choice, threshold tuning and the statistics.
        recal_images: training images for the backbone's BN recalibration.
        bn_momentum: see `nasx.metric.context.MetricContext.calibrated`; ``None`` (default),
            the exact average over ``recal_images``: CNAS does not recalibrate, and GeNAS's
            EMA (0.1) over a few batches stays far from the subnet's statistics (on a
            digits-trained CPU supernet, 4 batches: 9.8 % against 96 % valid accuracy).
        max_batches: cap every training epoch at this many batches (a CPU budget; ``None``:
            the whole training split, as the references).
    """

    name = "accuracy"
    higher_is_better = True
    ideal = 1.0
    error_scale = 100.0
    outputs = ("avg_macs", "n_exits")

    def __init__(
        self,
        method: str = "binary",
        backbone_epochs: int = 10,
        warmup_ee_epochs: int = 5,
        ee_epochs: int = 5,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-5,
        w_alpha: float = 1.0,
        w_beta: float = 1.0,
        w_gamma: float = 1.0,
        mmax: float | None = None,
        top1min: float = 0.0,
        support_set: bool = True,
        support_fraction: float = 0.1,
        energy_grad: bool = True,
        tune_epsilon: bool = True,
        freeze_backbone_bn: bool = True,
        executed_costs: bool = True,
        val_images: int = 5000,
        recal_images: int = 850,
        bn_momentum: float | None = None,
        max_batches: int | None = None,
    ) -> None:
        self.recipe = EarlyExitRecipe(
            method=method,
            backbone_epochs=backbone_epochs,
            warmup_ee_epochs=warmup_ee_epochs,
            ee_epochs=ee_epochs,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            w_alpha=w_alpha,
            w_beta=w_beta,
            w_gamma=w_gamma,
            mmax=mmax,
            top1min=top1min,
            support_set=support_set,
            support_fraction=support_fraction,
            energy_grad=energy_grad,
            tune_epsilon=tune_epsilon,
            freeze_backbone_bn=freeze_backbone_bn,
            executed_costs=executed_costs,
        )
        if val_images < 1 or recal_images < 1:
            raise ValueError("metric.val_images and metric.recal_images must be >= 1")
        if max_batches is not None and max_batches < 1:
            raise ValueError(f"metric.max_batches must be >= 1 or null, got {max_batches}")
        self.val_images, self.recal_images, self.bn_momentum = val_images, recal_images, bn_momentum
        self.max_batches = max_batches

    @property
    def binary(self) -> bool:
        """NACHOS's binary exits (``method=binary``) or EDANAS's plain ones."""
        return self.recipe.method == "binary"

    def check_space(self, space: Any) -> None:
        """Raise `NasxError` naming the fix unless ``space`` has this method's exits."""
        kind = {"joint": "ee_mbv3", "binary": "nachos_mbv3"}[self.recipe.method]
        method = "edanas" if kind == "ee_mbv3" else "nachos"
        if not hasattr(space, "exit_config") or (
            isinstance(space, NachosMobileNetV3Space) != self.binary
        ):
            raise NasxError(
                f"metric={method} trains {'NACHOS' if self.binary else 'EDANAS'} exits, which "
                f"{type(space).__name__} does not encode: use space={kind} (or {kind}_cpu), or "
                "another metric"
            )

    def trained(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> tuple[EarlyExitNetwork, Any]:
        """``arch``'s early-exit network trained as the method says, and the training result.

        A function of ``generator``'s state: `artifacts` rebuilds the network a search
        evaluated by calling it again with the same generator.
        """
        space: Any = ctx.space
        self.check_space(space)
        config = space.exit_config(arch)
        backbone = ctx.calibrated(arch, generator, self.recal_images, self.bn_momentum)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # the new exit heads' initial weights
            net = EarlyExitNetwork(
                backbone.cpu(),  # costs are counted on the CPU
                config.depths,
                config.stages,
                space.num_classes,
                self.binary,
                space.input_shape_of(arch),
                config.thresholds,
                "cumulative" if self.binary else "margin",
            ).to(ctx.device)
        result = ctx.runner.train_early_exit(
            net,
            self.recipe,
            ctx.train_loader(seed, arch),
            ctx.valid_loader(self.val_images, arch),
            seed,
            self.max_batches,
        )
        return net.eval(), result

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, Any]:
        net, result = self.trained(arch, ctx, generator)
        ev = result.evaluation
        tuned = {}
        if isinstance(ev, TuningResult):  # NACHOS: the grid value and whether repair moved it
            tuned = {"grid_epsilon": float(ev.epsilon), "repaired": float(ev.repaired)}
        return {
            **tuned,
            "accuracy": float(ev.accuracy),
            "top1_err": 100.0 * (1.0 - float(ev.accuracy)),
            "avg_macs": float(ev.avg_macs),
            "n_exits": int(net.n_exits),
            "exits_ratio": [float(v) for v in ev.exit_ratios],
            "epsilon": [float(v) for v in ev.thresholds],
            "branch_scores": [float(v) for v in ev.exit_accuracies],
            "exit_costs": [float(v) for v in net.exit_costs],
            "inference_costs": [float(v) for v in net.inference_costs],
            "macs": float(net.exit_costs[-1]),
            "params": float(net.params),
            "backbone_top1": 100.0 * float(result.backbone_accuracy),
            "final_top1": 100.0 * float(result.final_accuracy),
            "ece": [float(v) for v in result.ece],
        }

    def artifacts(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, Any]:
        """``{"eenn.pt": ...}``: the trained network as the search evaluated it.

        The state dict with what rebuilds it (`nasx.early_exit.load_eenn`): exit stages,
        thresholds, rule, costs and the validation ``avg_macs``.
        """
        net, result = self.trained(arch, ctx, generator)
        return {
            EENN_FILE: {
                "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                "arch": ctx.space.to_str(arch),
                "exit_stages": list(net.exit_stages),
                "thresholds": list(net.thresholds or ()),
                "rule": net.rule_name,
                "binary": net.binary,
                "exit_costs": [float(v) for v in self.recipe.costs(net)],
                "avg_macs": float(result.evaluation.avg_macs),
            }
        }
