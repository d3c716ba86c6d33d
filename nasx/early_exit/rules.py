"""Exit rules of early-exit networks: when a sample leaves, and what that costs on average.

Two rules, as the seeds define them (reference ``seed-nsganetv2-cnas.md`` §6.3-6.4):

* `MarginRule` (EDANAS, ``sm_eval``): the confidence of an exit is the score margin, top-1
  minus top-2 softmax probability of its logits; a sample leaves at the first exit whose
  margin is ``>= threshold``.
* `CumulativeRule` (NACHOS, ``binary_eval``): every intermediate exit has one extra output
  unit whose sigmoid is its confidence ``h_b``; the normalised exit probabilities are
  ``p_b = h_b * prod_{j<b} (1 - h_j)``, accumulated as a running sum, and a sample leaves at
  the first exit where that sum is ``>= threshold``.

The last exit takes every sample still inside. A rule is written as one `step` per exit on
the samples still running, so the same code decides in batch evaluation (`assign_exits`, all
exits computed) and in true early-exit inference (`nasx.early_exit.network`, where exited
samples leave the batch): the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

#: the rules by name (``rule=`` in configs)
RULES = ("margin", "cumulative")


def score_margin(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 softmax probability per row (EDANAS's confidence)."""
    top2 = torch.softmax(logits.float(), dim=1).topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


class ExitRule(Protocol):
    """One decision per exit on the samples still running (see the module docstring)."""

    binary: bool

    def start(self, n: int, device: torch.device) -> torch.Tensor:
        """The per-sample state before the first exit."""
        ...

    def step(
        self, output: torch.Tensor, threshold: float, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(leaves, new_state)`` for one intermediate exit's raw ``output``."""
        ...


class MarginRule:
    """EDANAS: leave at the first exit whose score margin is ``>= threshold``."""

    binary = False

    def start(self, n: int, device: torch.device) -> torch.Tensor:
        """No state (an empty per-sample tensor)."""
        return torch.zeros(n, 0, device=device)

    def step(
        self, output: torch.Tensor, threshold: float, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Leave where the margin of ``output`` (logits) reaches ``threshold``."""
        return score_margin(output) >= threshold, state


class CumulativeRule:
    """NACHOS: leave where the running sum of exit probabilities reaches ``threshold``.

    The state per sample is ``(prod_{j<b} (1 - h_j), sum_{j<b} p_j)``; an intermediate
    output holds the class logits and, last, the confidence unit.
    """

    binary = True

    def start(self, n: int, device: torch.device) -> torch.Tensor:
        """Survival 1 and cumulative probability 0."""
        state = torch.zeros(n, 2, device=device)
        state[:, 0] = 1.0
        return state

    def step(
        self, output: torch.Tensor, threshold: float, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add ``p_b = h_b * survival`` to the running sum; leave where it is ``>= threshold``."""
        h = torch.sigmoid(output[:, -1].float())
        p = h * state[:, 0]
        cum = state[:, 1] + p
        return cum >= threshold, torch.stack([state[:, 0] * (1.0 - h), cum], dim=1)


def make_rule(name: str) -> ExitRule:
    """The rule called ``name`` (one of `RULES`)."""
    if name == "margin":
        return MarginRule()
    if name == "cumulative":
        return CumulativeRule()
    raise ValueError(f"unknown exit rule {name!r}: use one of {', '.join(RULES)}")


def class_logits(output: torch.Tensor, rule: ExitRule, last: bool) -> torch.Tensor:
    """The class logits of one exit's output (a binary intermediate exit drops its unit)."""
    return output[:, :-1] if rule.binary and not last else output


@torch.no_grad()
def assign_exits(
    outputs: Sequence[torch.Tensor], thresholds: Sequence[float], rule: ExitRule
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(exit index, prediction)`` per sample from every exit's output (batch evaluation).

    Args:
        outputs: one ``(N, ...)`` tensor per exit, the last the final classifier's logits.
        thresholds: one per intermediate exit (``len(outputs) - 1``; a final threshold, as
            EDANAS's ``epsilon`` list ends with 1, may be given and is ignored).
        rule: `MarginRule` or `CumulativeRule`.
    """
    n_exits = len(outputs)
    if len(thresholds) not in (n_exits - 1, n_exits):
        raise ValueError(f"{len(thresholds)} thresholds for {n_exits} exits")
    n = outputs[0].shape[0]
    device = outputs[0].device
    exit_of = torch.full((n,), n_exits - 1, dtype=torch.long, device=device)
    open_ = torch.ones(n, dtype=torch.bool, device=device)
    state = rule.start(n, device)
    for b in range(n_exits - 1):
        leaves, state = rule.step(outputs[b], float(thresholds[b]), state)
        now = leaves & open_
        exit_of[now] = b
        open_ &= ~now
    preds = torch.stack(
        [class_logits(o, rule, b == n_exits - 1).argmax(1) for b, o in enumerate(outputs)]
    )
    return exit_of, preds.gather(0, exit_of.unsqueeze(0)).squeeze(0)


def exit_ratios(exit_of: torch.Tensor, n_exits: int) -> list[float]:
    """Share of samples leaving at each exit (CNAS ``exits_ratio``, sums to 1)."""
    counts = torch.bincount(exit_of.cpu(), minlength=n_exits)[:n_exits].double()
    return (counts / max(1, len(exit_of))).tolist()


def avg_macs(ratios: Sequence[float], costs: Sequence[float]) -> float:
    """CNAS ``avg_macs = sum_b w_b * cost_b`` (cost up to and including exit b, M MACs)."""
    if len(ratios) != len(costs):
        raise ValueError(f"{len(ratios)} exit ratios for {len(costs)} exit costs")
    return float(sum(w * c for w, c in zip(ratios, costs, strict=True)))
