"""Exit thresholds after training: evaluation, NACHOS's tuning and repair, per-exit ECE.

Everything here works on the precomputed outputs of every exit on the validation set (one
forward pass), so trying a threshold vector costs no forward pass (`assign_exits`).
Reference ``seed-nsganetv2-cnas.md`` §6.4 "Threshold tuning and repair" (CNAS
``ee_train.py``, ``binary_eval`` with cumulative confidences) and "Stats" (``ece_scores``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from nasx.early_exit.rules import (
    CumulativeRule,
    ExitRule,
    assign_exits,
    avg_macs,
    class_logits,
    exit_ratios,
)

#: NACHOS's single-epsilon grid
EPSILON_GRID = (0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8)
#: the first exit's threshold is never below this (``max(0.7, eps)``)
FIRST_EXIT_FLOOR = 0.7
#: repair lowers one exit's threshold by this much per try
REPAIR_STEP = 0.1
#: repair moves to the previous exit once a threshold is at or below this
REPAIR_FLOOR = 0.11


@dataclass(frozen=True)
class ExitEvaluation:
    """One threshold vector on the validation outputs.

    Attributes:
        thresholds: one per intermediate exit.
        accuracy: global accuracy (fraction): every sample judged at the exit it leaves at.
        avg_macs: ``sum_b ratio_b * cost_b`` (M MACs).
        exit_ratios: share of samples leaving at each exit (sums to 1).
        exit_accuracies: accuracy of each exit on the samples leaving there (0 where none
            leave; CNAS ``branch_scores``).
        counts: samples leaving at each exit.
    """

    thresholds: tuple[float, ...]
    accuracy: float
    avg_macs: float
    exit_ratios: tuple[float, ...]
    exit_accuracies: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class TuningResult(ExitEvaluation):
    """The tuned (and possibly repaired) thresholds and their evaluation.

    Attributes:
        epsilon: the grid value with the best accuracy.
        repaired: repair lowered thresholds until ``avg_macs <= mmax``.
        feasible: ``avg_macs <= mmax`` (or no limit) and ``accuracy >= top1min``.
    """

    epsilon: float
    repaired: bool
    feasible: bool


def evaluate_thresholds(
    outputs: Sequence[torch.Tensor],
    targets: torch.Tensor,
    thresholds: Sequence[float],
    costs: Sequence[float],
    rule: ExitRule,
) -> ExitEvaluation:
    """Exit every sample by ``rule`` at ``thresholds`` and score the result.

    Args:
        outputs: every exit's ``(N, ...)`` output on the validation set, final exit last.
        targets: the ``N`` labels.
        thresholds: one per intermediate exit (a trailing final threshold is ignored).
        costs: M MACs per exit, final last.
        rule: the exit rule (`CumulativeRule` for NACHOS, `MarginRule` for EDANAS).
    """
    n_exits = len(outputs)
    exit_of, preds = assign_exits(outputs, thresholds, rule)
    exit_of, hit = exit_of.cpu(), (preds.cpu() == targets.cpu())
    counts = torch.bincount(exit_of, minlength=n_exits)[:n_exits]
    right = torch.zeros(n_exits, dtype=torch.long).index_add_(0, exit_of, hit.long())
    ratios = exit_ratios(exit_of, n_exits)
    return ExitEvaluation(
        thresholds=tuple(float(t) for t in list(thresholds)[: n_exits - 1]),
        accuracy=float(hit.double().mean()) if len(hit) else 0.0,
        avg_macs=avg_macs(ratios, costs),
        exit_ratios=tuple(ratios),
        exit_accuracies=tuple(
            float(r) / float(c) if c > 0 else 0.0
            for r, c in zip(right.tolist(), counts.tolist(), strict=True)
        ),
        counts=tuple(int(c) for c in counts.tolist()),
    )


def grid_thresholds(epsilon: float, n_exits: int) -> tuple[float, ...]:
    """NACHOS's thresholds for one grid value: ``max(0.7, eps)`` first, ``eps`` after."""
    if n_exits < 2:
        return ()
    return (max(FIRST_EXIT_FLOOR, epsilon),) + (epsilon,) * (n_exits - 2)


def tune_thresholds(
    outputs: Sequence[torch.Tensor],
    targets: torch.Tensor,
    costs: Sequence[float],
    *,
    mmax: float | None = None,
    top1min: float = 0.0,
    grid: Sequence[float] = EPSILON_GRID,
    rule: ExitRule | None = None,
) -> TuningResult:
    """NACHOS's threshold tuning and repair on precomputed validation outputs.

    1. Every ``eps`` of ``grid`` is tried as `grid_thresholds` under ``rule`` (the cumulative
       rule by default); the first ``eps`` with the best global accuracy is kept.
    2. **Repair**, when that accuracy is ``>= top1min`` and its ``avg_macs > mmax``: starting
       at the second-to-last exit (the last intermediate one), lower its threshold by 0.1 and
       re-evaluate. A step that drops the accuracy below ``top1min`` is undone and repair
       moves to the previous exit; so it does once the threshold is ``<= 0.11``. Repair stops
       as soon as ``avg_macs <= mmax``, or when no exit is left. A threshold tuned to 0.1 can
       so reach 0 (every sample still inside leaves there), as in the reference.

    Two reference quirks are not reproduced. The reference checks ``top1min`` against the
    accuracy of the *last* grid value evaluated (0.8), not of the chosen one. And its
    threshold list is aliased as the "best" one, so a rejected step stays in the thresholds it
    reports and in every later evaluation, while the reported scores and ``avg_macs`` are
    those of the last accepted step. nasx checks the chosen value and undoes a rejected step.

    Args:
        outputs: every exit's output on the validation set (final exit last).
        targets: the labels.
        costs: M MACs per exit, final last.
        mmax: the MAC limit (``None``: no repair).
        top1min: the accuracy floor (fraction) below which repair neither starts nor steps.
        grid: the single-epsilon grid.
        rule: the exit rule (default `CumulativeRule`).
    """
    rule = CumulativeRule() if rule is None else rule
    n_exits = len(outputs)

    def evaluate(th: Sequence[float]) -> ExitEvaluation:
        return evaluate_thresholds(outputs, targets, th, costs, rule)

    best_eps, best = grid[0], evaluate(grid_thresholds(grid[0], n_exits))
    for eps in grid[1:]:
        ev = evaluate(grid_thresholds(eps, n_exits))
        if ev.accuracy > best.accuracy:
            best_eps, best = eps, ev

    current, repaired = best, False
    if mmax is not None and best.accuracy >= top1min and best.avg_macs > mmax:
        th = list(best.thresholds)
        i = n_exits - 2
        while i >= 0 and current.avg_macs > mmax:
            trial = list(th)
            trial[i] = round(trial[i] - REPAIR_STEP, 10)
            ev = evaluate(trial)
            if ev.accuracy < top1min:
                i -= 1
                continue
            th, current = trial, ev
            if current.avg_macs <= mmax:
                repaired = True
                break
            if th[i] <= REPAIR_FLOOR:
                i -= 1
    feasible = (mmax is None or current.avg_macs <= mmax) and current.accuracy >= top1min
    return TuningResult(
        thresholds=current.thresholds,
        accuracy=current.accuracy,
        avg_macs=current.avg_macs,
        exit_ratios=current.exit_ratios,
        exit_accuracies=current.exit_accuracies,
        counts=current.counts,
        epsilon=float(best_eps),
        repaired=repaired,
        feasible=feasible,
    )


def expected_calibration_error(
    logits: torch.Tensor, targets: torch.Tensor, bins: int = 30
) -> float:
    """ECE of one classifier: ``sum_bins |accuracy - confidence| * share of samples``.

    The confidence is the top softmax probability; bin ``k`` holds ``((k-1)/bins, k/bins]``.
    """
    probs = torch.softmax(logits.double(), dim=1)
    conf, pred = probs.max(dim=1)
    hit = (pred.cpu() == targets.cpu()).double()
    conf = conf.cpu()
    n, ece = len(conf), 0.0
    for k in range(1, bins + 1):
        inside = (conf > (k - 1) / bins) & (conf <= k / bins)
        s = int(inside.sum())
        if s:
            ece += s / n * abs(float(hit[inside].mean()) - float(conf[inside].mean()))
    return ece


def exit_ece(
    outputs: Sequence[torch.Tensor], targets: torch.Tensor, rule: ExitRule, bins: int = 30
) -> list[float]:
    """Per-exit ECE of the class logits on every sample (NACHOS ``ece_scores``)."""
    last = len(outputs) - 1
    return [
        expected_calibration_error(class_logits(o, rule, b == last), targets, bins)
        for b, o in enumerate(outputs)
    ]
