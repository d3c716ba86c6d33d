"""An early-exit network (EENN) on OFA's static MobileNetV3, with true early-exit inference.

Built as EDANAS and NACHOS build theirs (reference ``seed-nsganetv2-cnas.md`` §6.3-6.4): exit
``i`` reads the output of the last block of stage ``i`` (block index ``d_1 + ... + d_i``; block
0 is the fixed first block), the final exit is OFA's own head, and the intermediate heads
(`nasx.early_exit.heads.build_exit_head`) are sized adaptively from the last exit backwards so
that an exit costs less than the next one.

Costs, per sample, in millions of MACs (M):

* ``backbone_macs[b]``: stem and blocks up to exit ``b``, by `nasx.objective.profile.
  count_macs` on the truncated backbone;
* ``head_macs[b]``: exit ``b``'s head by the reference's counter (`heads.head_cost`);
* ``exit_costs[b] = backbone_macs[b] + head_macs[b]``: CNAS's per-exit cost, the one its
  ``avg_macs = sum_b w_b * exit_costs[b]`` weighs (`nasx.early_exit.rules.avg_macs`);
* ``inference_costs[b]``: what `EarlyExitNetwork.infer` spends on a sample that leaves at exit
  ``b``: ``backbone_macs[b]`` plus the heads of *every* exit up to ``b``, since the sample ran
  the heads of the exits it did not take. CNAS's ``avg_macs`` leaves those out, so it
  understates the executed cost by ``sum_b w_b * sum_{j<b} head_macs[j]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from itertools import accumulate
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasx.early_exit.heads import build_exit_head, eval_mode, head_cost, max_pool_kernel
from nasx.early_exit.rules import ExitRule, class_logits, make_rule
from nasx.objective.profile import count_macs

#: stages of OFA's MobileNetV3 (an exit may follow any but the last)
N_STAGES = 5


@dataclass(frozen=True)
class EarlyExitOutput:
    """What `EarlyExitNetwork.infer` decided for each of the ``N`` samples."""

    preds: torch.Tensor  # (N,) predicted class
    exits: torch.Tensor  # (N,) index of the exit the sample left at
    macs: torch.Tensor | None  # (N,) float64, M MACs executed for the sample (count_macs)


class EarlyExitNetwork(nn.Module):
    """OFA's static MobileNetV3 with exits after some of its first four stages.

    Args:
        backbone: OFA's static ``MobileNetV3`` (``supernet.extract(arch)``). Its modules are
            shared, not copied: ``stem`` (``first_conv``), ``blocks`` and the final exit.
        depths: the five stage depths of ``backbone``.
        exit_stages: stages (sorted, within 1..4) after which an intermediate exit sits.
        num_classes: classes of the intermediate exits (the final one keeps its own).
        binary: intermediate exits output one more unit, NACHOS's confidence.
        input_shape: ``(C, H, W)`` of one input, for the costs and the heads' sizes.
        thresholds: one per intermediate exit (a trailing final one is dropped), or ``None``
            until they are known (e.g. tuned after training); `infer` needs them.
        rule: ``"margin"`` (EDANAS) or ``"cumulative"`` (NACHOS, needs ``binary``).

    Attributes ``backbone_macs``, ``head_macs``, ``exit_costs`` and ``inference_costs`` (see
    the module docstring), ``head_params`` (M) and ``exit_shapes`` have one entry per exit, the
    final one last. Build it with the backbone on the CPU (the costs are counted there, as
    `count_macs` counts them) and move it afterwards.
    """

    def __init__(
        self,
        backbone: nn.Module,
        depths: Sequence[int],
        exit_stages: Sequence[int],
        num_classes: int,
        binary: bool,
        input_shape: tuple[int, int, int],
        thresholds: Sequence[float] | None = None,
        rule: str = "margin",
    ) -> None:
        super().__init__()
        net: Any = backbone  # OFA's code is untyped
        depths, exit_stages = [int(d) for d in depths], [int(s) for s in exit_stages]
        if len(depths) != N_STAGES or len(net.blocks) != 1 + sum(depths):
            raise ValueError(
                f"depths {depths}: need {N_STAGES} stage depths summing to the backbone's "
                f"{len(net.blocks) - 1} blocks after the first"
            )
        if exit_stages != sorted(set(exit_stages)) or not set(exit_stages) <= {1, 2, 3, 4}:
            raise ValueError(f"exit_stages {exit_stages}: use a sorted subset of 1..4")
        self.rule: ExitRule = make_rule(rule)
        if self.rule.binary != binary:
            raise ValueError(
                f"rule {rule!r} needs {'binary' if self.rule.binary else 'plain'} exits: "
                f"set binary={self.rule.binary}"
            )
        self.rule_name, self.binary, self.num_classes = rule, binary, num_classes
        #: the stages (1..4) after which an intermediate exit sits
        self.exit_stages = tuple(exit_stages)
        self.input_shape = tuple(input_shape)
        ends = list(accumulate(depths))
        #: index of the block each exit reads, the final exit's (the last block) last
        self.exit_blocks = tuple([ends[s - 1] for s in exit_stages] + [ends[-1]])
        self.stem: nn.Module = net.first_conv
        self.blocks = nn.ModuleList(net.blocks)
        final = nn.Sequential(
            net.final_expand_layer,
            net.global_avg_pool,
            net.feature_mix_layer,
            nn.Flatten(),
            net.classifier,
        )
        self.heads = nn.ModuleList(self._build_heads(final))
        self._thresholds: tuple[float, ...] | None = None
        self.thresholds = thresholds

    # --- construction ----------------------------------------------------------------------
    def _build_heads(self, final: nn.Module) -> list[nn.Module]:
        """NACHOS's adaptive heads, from the last intermediate exit backwards.

        An exit whose cost (backbone to it + its head) is not below the next exit's gets a max
        pool of kernel 1, 2, 4, ... (up to `heads.max_pool_kernel` of its channels) before its
        head until it is; where even the largest pool is not enough, that largest pool is kept,
        as NACHOS keeps it. Unlike NACHOS, a kernel larger than the map is not tried (NACHOS's
        would fail: it leaves nothing to pool).
        """
        with eval_mode(self), torch.no_grad():
            shapes, h = [], torch.zeros(1, *self.input_shape)
            for b in range(self.n_exits):
                h = self._segment(b, h)
                shapes.append((h.shape[1], h.shape[2], h.shape[3]))
            #: M MACs of the stem and blocks up to each exit
            self.backbone_macs = [
                count_macs(nn.Sequential(self.stem, *self.blocks[: i + 1]), self.input_shape)
                for i in self.exit_blocks
            ]
        #: ``(C, H, W)`` of the feature map each exit reads
        self.exit_shapes: list[tuple[int, int, int]] = shapes
        costs = [head_cost(final, shapes[-1])]
        heads = [final]
        for b in reversed(range(self.n_exits - 1)):
            c, hh, ww = shapes[b]
            head = build_exit_head(c, self.num_classes, self.binary, None, (hh, ww))
            cost = head_cost(head, shapes[b])
            next_cost = self.backbone_macs[b + 1] + costs[0].macs
            k, k_max = 1, min(max_pool_kernel(c), hh, ww)
            while self.backbone_macs[b] + cost.macs >= next_cost and k <= k_max:
                head = build_exit_head(c, self.num_classes, self.binary, k, (hh, ww))
                cost = head_cost(head, shapes[b])
                k *= 2
            heads.insert(0, head)
            costs.insert(0, cost)
        self.head_macs = [c.macs for c in costs]
        self._pool_macs = [c.pool_macs for c in costs]
        self.head_params = [sum(p.numel() for p in m.parameters()) / 1e6 for m in heads]
        return heads

    # --- costs and settings ----------------------------------------------------------------
    @property
    def n_exits(self) -> int:
        """Exits, the final one included."""
        return len(self.exit_blocks)

    @property
    def exit_costs(self) -> list[float]:
        """CNAS's cost per exit: backbone to it plus its own head (M MACs)."""
        return [b + h for b, h in zip(self.backbone_macs, self.head_macs, strict=True)]

    @property
    def inference_costs(self) -> list[float]:
        """M MACs `infer` spends on a sample leaving at each exit (every head passed counts)."""
        heads = list(accumulate(self.head_macs))
        return [b + h for b, h in zip(self.backbone_macs, heads, strict=True)]

    @property
    def params(self) -> float:
        """Parameters of the backbone and every exit, in millions (CNAS ``params``)."""
        return sum(p.numel() for p in self.parameters()) / 1e6

    @property
    def thresholds(self) -> tuple[float, ...] | None:
        """One threshold per intermediate exit, or ``None`` when not set."""
        return self._thresholds

    @thresholds.setter
    def thresholds(self, values: Sequence[float] | None) -> None:
        if values is None:
            self._thresholds = None
            return
        if len(values) not in (self.n_exits - 1, self.n_exits):
            raise ValueError(f"{len(values)} thresholds for {self.n_exits - 1} intermediate exits")
        self._thresholds = tuple(float(v) for v in values[: self.n_exits - 1])

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The stem's and the blocks' parameters (NACHOS freezes these while exits train)."""
        return [*self.stem.parameters(), *self.blocks.parameters()]

    def head_parameters(self) -> list[nn.Parameter]:
        """Every exit's parameters, the final exit's (OFA's head) included, as NACHOS trains."""
        return list(self.heads.parameters())

    # --- running ---------------------------------------------------------------------------
    def _segment(self, b: int, h: torch.Tensor) -> torch.Tensor:
        """The backbone from exit ``b - 1`` (the input, with the stem, for ``b = 0``) to ``b``."""
        first = self.exit_blocks[b - 1] + 1 if b else 0
        if not b:
            h = self.stem(h)
        for block in self.blocks[first : self.exit_blocks[b] + 1]:
            h = block(h)
        return h

    def forward(self, x: torch.Tensor, backbone_grad: bool = True) -> list[torch.Tensor]:
        """Every exit's output on all of ``x``, the final exit's last (training, evaluation).

        Intermediate outputs of binary exits hold the class logits and, last, the confidence
        unit. ``backbone_grad=False`` runs the backbone under ``no_grad`` (the exits still get
        gradients); BN statistics follow the modules' train/eval mode either way.
        """
        features = []
        with nullcontext() if backbone_grad else torch.no_grad():
            for b in range(self.n_exits):
                x = self._segment(b, x)
                features.append(x)
        return [head(f) for head, f in zip(self.heads, features, strict=True)]

    @torch.no_grad()
    def infer(self, x: torch.Tensor, count_macs: bool = False) -> EarlyExitOutput:
        """True early exit: each sample runs the backbone only until it leaves.

        At each intermediate exit the head runs on the samples still inside, the rule decides
        with `thresholds`, the leaving samples' predictions are recorded, and the backbone goes
        on with the others only (none left: it stops). The decisions equal
        `nasx.early_exit.rules.assign_exits` on `forward`'s outputs. Needs eval mode: in
        training mode BN would use the statistics of a batch that shrinks at every exit.

        With ``count_macs``, every backbone segment and head runs under
        ``torch.utils.flop_counter.FlopCounterMode``; the MACs (FLOPs / 2) of a part run on
        ``k`` samples go to those ``k`` in equal shares, plus the head's pools per sample
        (`heads.HeadCost.pool_macs`, which flop_counter does not see). A sample leaving at exit
        ``b`` so gets ``inference_costs[b]``.
        """
        if self.training:
            raise RuntimeError("EarlyExitNetwork.infer needs eval mode: call .eval() first")
        if self._thresholds is None:
            raise RuntimeError("EarlyExitNetwork.infer needs thresholds: set .thresholds first")
        n, device, last = x.shape[0], x.device, self.n_exits - 1
        preds = torch.zeros(n, dtype=torch.long, device=device)
        exits = torch.zeros(n, dtype=torch.long, device=device)
        macs = torch.zeros(n, dtype=torch.float64, device=device) if count_macs else None
        inside = torch.arange(n, device=device)
        state = self.rule.start(n, device)
        h = x
        for b in range(self.n_exits):
            if not len(inside):
                break
            h, spent = _run(partial(self._segment, b), h, count_macs)
            out, spent_head = _run(self.heads[b], h, count_macs)
            if macs is not None:
                macs[inside] += (spent + spent_head) / len(inside) + self._pool_macs[b]
            if b == last:
                leaves = torch.ones(len(inside), dtype=torch.bool, device=device)
            else:
                leaves, state = self.rule.step(out, self._thresholds[b], state)
            gone = inside[leaves]
            preds[gone] = class_logits(out[leaves], self.rule, b == last).argmax(1)
            exits[gone] = b
            if len(gone):
                stay = ~leaves
                inside, h, state = inside[stay], h[stay], state[stay]
        return EarlyExitOutput(preds, exits, macs)


def _run(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, count: bool
) -> tuple[torch.Tensor, float]:
    """``fn(x)`` and, when ``count``, the M MACs it executed (flop_counter's FLOPs / 2)."""
    if not count:
        return fn(x), 0.0
    counter = FlopCounterMode(display=False)
    with counter:
        out = fn(x)
    return out, counter.get_total_flops() / 2 / 1e6
