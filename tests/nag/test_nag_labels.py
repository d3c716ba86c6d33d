from __future__ import annotations

import numpy as np
import pytest

from nasx.nag.graph import CellGraph
from nasx.nag.labels import (
    Condition,
    class_labels,
    class_thresholds,
    nag_labels,
    output_in_degrees,
    param_counts,
    params_values,
)
from nasx.nag.nb201_adapter import NB201GraphAdapter
from nasx.objective.profile import count_params
from nasx.search_space.base import Architecture


def test_terciles_follow_the_reference_rule() -> None:
    values = [5, 1, 9, 3, 7, 2, 8, 4, 6]
    # thresholds sorted[9 // 3 * i] = sorted[3], sorted[6] = 4, 7; label: first i with v <= t_i
    assert class_thresholds(values).tolist() == [4, 7]
    assert class_labels(values).tolist() == [1, 0, 2, 0, 1, 0, 2, 0, 1]
    labels = nag_labels(values, params=[9, 8, 7, 6, 5, 4, 3, 2, 1])
    assert labels.shape == (9, 2)
    assert labels[:, 1].tolist() == [2, 2, 1, 1, 1, 0, 0, 0, 0]
    # ties go to the lower class, as in the reference (thresholds 2, 3)
    assert class_labels([1, 1, 1, 2, 2, 2, 3, 3, 3]).tolist() == [0] * 6 + [1] * 3


@pytest.mark.parametrize(
    ("text", "cond"),
    [
        ("high_acc", Condition(2)),
        ("low_acc", Condition(0)),
        ("high_acc+small_params", Condition(2, 0)),
        ("mid_acc+large_params", Condition(1, 2)),
    ],
)
def test_conditions_round_trip(text: str, cond: Condition) -> None:
    assert Condition.parse(text) == cond
    assert str(cond) == text
    assert Condition.parse("small_params+high_acc") == Condition(2, 0)
    assert Condition.parse("2_acc") == Condition(2)


@pytest.mark.parametrize("text", ["high", "small_params", "top_acc", "high_acc+high_acc"])
def test_bad_conditions_name_the_form(text: str) -> None:
    with pytest.raises(ValueError, match="<level>_acc"):
        Condition.parse(text)


def test_params_are_true_counts_by_default() -> None:
    adapter = NB201GraphAdapter()
    archs = [Architecture((0,) * 6), Architecture((3,) * 6), Architecture((2,) * 6)]
    counts = params_values(adapter, archs)
    assert counts.tolist() == param_counts(adapter.space, archs).tolist()
    assert counts[0] == pytest.approx(count_params(adapter.space.build_network(archs[0])))
    assert counts[0] < counts[2] < counts[1]  # none < conv1x1 < conv3x3
    # the reference's proxy is the output in-degree, constant on NAS-Bench-201
    assert params_values(adapter, archs, "output_in_degree").tolist() == [75600.0] * 3


def test_reference_in_degree_weights_normal_and_reduction_cells() -> None:
    two_preds = CellGraph((1, 2, 0), ((0, 0, 1), (0, 0, 1), (0, 0, 0)))
    one_pred = CellGraph((1, 2, 0), ((0, 0, 1), (0, 0, 0), (0, 0, 0)))
    out = output_in_degrees([(two_preds, one_pred), (one_pred, two_preds)])
    assert out.tolist() == [2 * 25200 + 8000, 25200 + 2 * 8000]
    assert np.array_equal(output_in_degrees([(one_pred,)], weights=()), [1.0])
