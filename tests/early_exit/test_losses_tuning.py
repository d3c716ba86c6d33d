"""NACHOS/EDANAS losses by hand, the support draw, threshold tuning and repair, ECE."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from nasx.early_exit import tuning
from nasx.early_exit.losses import (
    balance_weights,
    bce_regulariser,
    binary_outputs,
    classification_loss,
    energy_loss,
    exit_probabilities,
    joint_loss,
    nachos_loss,
    support_loss,
    support_matrix,
)
from nasx.early_exit.rules import CumulativeRule
from nasx.early_exit.support import SupportSplit, balanced_support
from nasx.early_exit.tuning import (
    evaluate_thresholds,
    expected_calibration_error,
    grid_thresholds,
    tune_thresholds,
)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# --- losses ----------------------------------------------------------------------------------
def test_binary_outputs_split_logits_and_fix_the_last_confidence() -> None:
    mid = torch.tensor([[1.0, 2.0, _logit(0.25)]])
    last = torch.tensor([[3.0, 4.0]])
    logits, h = binary_outputs([mid, last])
    assert logits.tolist() == [[[1.0, 2.0], [3.0, 4.0]]]
    assert h[0, 0].item() == pytest.approx(0.25)
    assert h[0, 1].item() == 1.0


def test_exit_probabilities_by_hand_and_sum_to_one() -> None:
    h = torch.tensor([[0.5, 0.2, 1.0], [0.0, 0.0, 1.0], [1.0, 0.3, 1.0]])
    p = exit_probabilities(h)
    assert p[0].tolist() == pytest.approx([0.5, 0.1, 0.4])
    assert p[1].tolist() == pytest.approx([0.0, 0.0, 1.0])
    assert p[2].tolist() == pytest.approx([1.0, 0.0, 0.0])
    rand = torch.cat([torch.rand(64, 3), torch.ones(64, 1)], dim=1)
    assert torch.allclose(exit_probabilities(rand).sum(1), torch.ones(64))


def test_classification_loss_weighs_each_exit_ce_by_its_probability() -> None:
    logits = torch.randn(4, 3, 5)
    y = torch.tensor([0, 1, 2, 3])
    p = exit_probabilities(torch.cat([torch.rand(4, 2), torch.ones(4, 1)], dim=1))
    expected = sum(
        (p[:, b] * F.cross_entropy(logits[:, b], y, reduction="none")).mean() for b in range(3)
    )
    assert classification_loss(logits, y, p).item() == pytest.approx(float(expected), rel=1e-6)


def test_balance_weights_per_exit() -> None:
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    w = balance_weights(t)
    # exit 0: 3 ones, 1 zero; exit 1: 1 one, 3 zeros (tot 4)
    assert w[:, 0].tolist() == pytest.approx([4 / 6, 4 / 6, 4 / 6, 2.0])
    assert w[:, 1].tolist() == pytest.approx([4 / 6, 4 / 6, 2.0, 4 / 6])
    assert balance_weights(torch.ones(3, 1)).flatten().tolist() == pytest.approx([0.5] * 3)


def test_bce_regulariser_by_hand_excludes_the_last_exit() -> None:
    # exit 0 right on samples 0-1, wrong on 2; exit 1 (last) anything
    logits = torch.tensor(
        [[[5.0, 0.0], [0.0, 5.0]], [[0.0, 5.0], [5.0, 0.0]], [[5.0, 0.0], [5.0, 0.0]]]
    )
    y = torch.tensor([0, 1, 1])
    h = torch.tensor([[0.9, 1.0], [0.6, 1.0], [0.2, 1.0]])
    t = torch.tensor([1.0, 1.0, 0.0])
    w = torch.tensor([3 / 4, 3 / 4, 3 / 2])
    expected = F.binary_cross_entropy(h[:, 0], t, weight=w)
    assert bce_regulariser(h, logits, y).item() == pytest.approx(expected.item(), rel=1e-6)
    h2 = h.clone()
    h2[:, 1] = 0.3  # the last exit's confidence is not regularised
    assert bce_regulariser(h2, logits, y).item() == pytest.approx(expected.item(), rel=1e-6)
    # clamped: a confidence of exactly 0 on a correct exit stays finite
    h3 = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    assert math.isfinite(bce_regulariser(h3, logits, y).item())


def test_energy_loss_zero_cases_and_value() -> None:
    p = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    costs = [1.0, 3.0]
    assert energy_loss(p, costs, None).item() == 0.0
    assert energy_loss(p, costs, 3.0).item() == 0.0  # the full net fits
    assert energy_loss(p, costs, 2.5).item() == 0.0  # E[MACs] = 2 fits
    assert energy_loss(p, costs, 1.5).item() == pytest.approx(0.5 / 1.5)
    assert energy_loss(p, costs, 1.5, grad=False).item() == pytest.approx(0.5 / 1.5)


def test_energy_loss_gradient_with_and_without_grad() -> None:
    conf = torch.tensor([[0.3], [0.8]], requires_grad=True)
    h = torch.cat([conf, torch.ones(2, 1)], dim=1)
    costs = [1.0, 3.0]
    loss = energy_loss(exit_probabilities(h), costs, 1.5)
    loss.backward()
    assert conf.grad is not None and (conf.grad < 0).all()  # exiting earlier is cheaper
    frozen = energy_loss(exit_probabilities(h), costs, 1.5, grad=False)
    assert not frozen.requires_grad
    assert frozen.item() == pytest.approx(loss.item())


def test_support_matrix_and_loss_by_hand() -> None:
    # 2 exits, 3 classes; exit 0 right on samples 0 and 2, exit 1 on samples 0, 2 and 3
    logits = torch.tensor(
        [
            [[9.0, 0, 0], [9.0, 0, 0]],
            [[9.0, 0, 0], [9.0, 0, 0]],
            [[0, 9.0, 0], [0, 9.0, 0]],
            [[9.0, 0, 0], [0, 9.0, 0]],
        ]
    )
    y = torch.tensor([0, 1, 1, 1])
    s = support_matrix(logits, y, n_classes=3)
    assert torch.allclose(s, torch.tensor([[1.0, 1.0], [1 / 3, 2 / 3], [0.0, 0.0]]))
    h = torch.tensor([[0.5, 1.0], [0.2, 1.0]])
    yy = torch.tensor([0, 1])
    expected = ((0.5 - 1) ** 2 + 0 + (0.2 - 1 / 3) ** 2 + (1 - 2 / 3) ** 2) / 4
    assert support_loss(h, yy, s).item() == pytest.approx(expected, rel=1e-6)
    # the reference's broadcast (E,) vs (E, 1) pairs every exit with every accuracy: not this
    quirk = sum(((s[yy[i]][None, :] - h[i][:, None]) ** 2).mean() for i in range(2)) / 2
    assert abs(float(quirk) - expected) > 1e-3


def test_joint_loss_by_hand() -> None:
    a, b, c = torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 4)
    y = torch.randint(0, 4, (5,))
    ce = [F.cross_entropy(t, y) for t in (a, b, c)]
    assert joint_loss([a, b, c], y).item() == pytest.approx(float(sum(ce)), rel=1e-6)
    weighted = joint_loss([a, b, c], y, weights=[0.5, 2.0])
    assert weighted.item() == pytest.approx(float(0.5 * ce[0] + 2.0 * ce[1] + ce[2]), rel=1e-6)


def test_nachos_loss_total_is_the_weighted_sum() -> None:
    torch.manual_seed(0)
    outputs = [torch.randn(6, 4), torch.randn(6, 4), torch.randn(6, 3)]
    y = torch.randint(0, 3, (6,))
    s = torch.rand(3, 3)
    terms = nachos_loss(
        outputs, y, [1.0, 2.0, 4.0], w_alpha=2.0, w_beta=3.0, w_gamma=0.5, mmax=1.5, support=s
    )
    total = 2.0 * terms.classification + terms.bce + 3.0 * terms.energy + 0.5 * terms.support
    assert terms.total.item() == pytest.approx(total.item(), rel=1e-6)
    assert terms.energy.item() > 0 and terms.support.item() > 0
    assert nachos_loss(outputs, y, [1.0, 2.0, 4.0]).support.item() == 0.0


# --- support draws ---------------------------------------------------------------------------
def test_balanced_support_draw() -> None:
    targets = torch.arange(200) % 4
    support, rest = balanced_support(targets, 4, 0.1, torch.Generator().manual_seed(0))
    assert torch.bincount(targets[support], minlength=4).tolist() == [5, 5, 5, 5]
    assert sorted(torch.cat([support, rest]).tolist()) == list(range(200))


def test_support_split_depends_on_seed_and_epoch_only() -> None:
    ds = TensorDataset(torch.randn(100, 2), torch.arange(100) % 5)
    loader = torch.utils.data.DataLoader(ds, batch_size=16)
    a, b = SupportSplit(loader, 5, seed=3), SupportSplit(loader, 5, seed=3)
    assert torch.equal(a.draw(1)[0], b.draw(1)[0])
    assert not torch.equal(a.draw(1)[0], a.draw(2)[0])
    ys = torch.cat([y for _, y in a.support_loader(2)])
    assert torch.bincount(ys, minlength=5).tolist() == [2] * 5
    assert sum(len(y) for _, y in a.train_loader(2)) == 90


# --- tuning and repair -----------------------------------------------------------------------
def _two_sample_outputs() -> tuple[list[torch.Tensor], torch.Tensor]:
    """Three exits, two samples of class 0 (see the cumulative sums in the comments).

    exit 0: h = 0.15 on both (cumulative 0.15), predicts class 1 (wrong) on both;
    exit 1: s1 h = 0.5 (cumulative 0.575), right; s2 h = 0.1 (cumulative 0.235), wrong;
    final: s1 wrong, s2 right.
    """
    e0 = torch.tensor([[0.0, 1.0, _logit(0.15)], [0.0, 1.0, _logit(0.15)]])
    e1 = torch.tensor([[1.0, 0.0, _logit(0.5)], [0.0, 1.0, _logit(0.1)]])
    final = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    return [e0, e1, final], torch.tensor([0, 0])


COSTS = [1.0, 2.0, 4.0]


def test_grid_thresholds_floor_the_first_exit() -> None:
    assert grid_thresholds(0.3, 4) == (0.7, 0.3, 0.3)
    assert grid_thresholds(0.8, 3) == (0.8, 0.8)
    assert grid_thresholds(0.5, 1) == ()


def test_evaluate_thresholds_counts_ratios_and_accuracies() -> None:
    outputs, y = _two_sample_outputs()
    ev = evaluate_thresholds(outputs, y, (0.7, 0.2), COSTS, CumulativeRule())
    assert ev.counts == (0, 2, 0)
    assert ev.exit_ratios == (0.0, 1.0, 0.0)
    assert ev.exit_accuracies == (0.0, 0.5, 0.0)
    assert ev.accuracy == 0.5 and ev.avg_macs == 2.0


def test_tuning_keeps_the_first_best_epsilon() -> None:
    outputs, y = _two_sample_outputs()
    # eps 0.1/0.2: s2 leaves wrongly at exit 1; 0.3/0.5: both right; >= 0.6: s1 wrong at final
    res = tune_thresholds(outputs, y, COSTS)
    assert res.epsilon == 0.3
    assert res.thresholds == (0.7, 0.3)
    assert res.accuracy == 1.0
    assert res.avg_macs == pytest.approx(3.0)
    assert res.exit_ratios == (0.0, 0.5, 0.5)
    assert not res.repaired and res.feasible


def _trace(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, ...]]:
    tried: list[tuple[float, ...]] = []
    real = tuning.evaluate_thresholds

    def spy(outputs: Any, targets: Any, thresholds: Any, costs: Any, rule: Any) -> Any:
        tried.append(tuple(thresholds))
        return real(outputs, targets, thresholds, costs, rule)

    monkeypatch.setattr(tuning, "evaluate_thresholds", spy)
    return tried


def test_repair_lowers_from_the_last_intermediate_exit_until_it_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs, y = _two_sample_outputs()
    tried = _trace(monkeypatch)
    res = tune_thresholds(outputs, y, COSTS, mmax=1.5, top1min=0.0)
    repair = tried[len(tuning.EPSILON_GRID) :]
    # exit 1 down to 0.1 (<= 0.11: move on), then exit 0 until everyone leaves there
    assert repair == [
        (0.7, 0.2),
        (0.7, 0.1),
        (0.6, 0.1),
        (0.5, 0.1),
        (0.4, 0.1),
        (0.3, 0.1),
        (0.2, 0.1),
        (0.1, 0.1),
    ]
    assert res.thresholds == (0.1, 0.1)
    assert res.avg_macs == 1.0 and res.repaired and res.feasible
    assert res.epsilon == 0.3


def test_repair_refuses_to_go_below_top1min(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, y = _two_sample_outputs()
    tried = _trace(monkeypatch)
    res = tune_thresholds(outputs, y, COSTS, mmax=2.5, top1min=0.9)
    repair = tried[len(tuning.EPSILON_GRID) :]
    # exit 1 at 0.2 costs accuracy: undone, exit 0 instead, until 0.1 costs accuracy too
    assert repair == [
        (0.7, 0.2),
        (0.6, 0.3),
        (0.5, 0.3),
        (0.4, 0.3),
        (0.3, 0.3),
        (0.2, 0.3),
        (0.1, 0.3),
    ]
    assert res.thresholds == (0.2, 0.3)
    assert res.accuracy == 1.0 and res.avg_macs == pytest.approx(3.0)
    assert not res.repaired and not res.feasible


def test_no_repair_below_top1min_or_without_a_limit() -> None:
    outputs, y = _two_sample_outputs()
    low = tune_thresholds(outputs, y, COSTS, mmax=1.5, top1min=1.1)  # unreachable floor
    assert low.thresholds == (0.7, 0.3) and not low.repaired and not low.feasible
    free = tune_thresholds(outputs, y, COSTS, mmax=None)
    assert free.thresholds == (0.7, 0.3) and free.feasible


# --- calibration -----------------------------------------------------------------------------
def test_expected_calibration_error_by_hand() -> None:
    # two samples at confidence 0.9 (one right), one at 0.6 (right)
    logits = torch.tensor([[math.log(0.9), math.log(0.1)]] * 2 + [[math.log(0.6), math.log(0.4)]])
    y = torch.tensor([0, 1, 0])
    expected = 2 / 3 * abs(0.5 - 0.9) + 1 / 3 * abs(1.0 - 0.6)
    assert expected_calibration_error(logits, y, bins=30) == pytest.approx(expected, rel=1e-6)
    assert expected_calibration_error(logits, y, bins=1) == pytest.approx(
        abs(2 / 3 - 0.8), rel=1e-6
    )
