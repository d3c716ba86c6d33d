"""Post-search selection, non-dominated sets and hypervolume."""

from __future__ import annotations

import numpy as np
import pytest

from nasx.hypervolume import hypervolume, non_dominated, reference_point
from nasx.select import select_architectures, tradeoff_scores


def records(F, failed=()):
    return [
        {"arch": f"a{i}", "F": list(map(float, f)), "failed": i in failed} for i, f in enumerate(F)
    ]


def knee_front() -> np.ndarray:
    """A convex front of two straight pieces meeting at the clear knee (0.1, 0.1), index 5."""
    x1 = np.linspace(0.0, 0.1, 6)
    x2 = np.linspace(0.1, 1.0, 10)[1:]
    return np.r_[np.c_[x1, 1 - 9 * x1], np.c_[x2, 0.1 - 0.1 * (x2 - 0.1) / 0.9]]


# --- non-dominated sets --------------------------------------------------------------------


def test_non_dominated_on_a_known_set():
    F = np.array(
        [
            [1.0, 5.0],  # 0 front
            [2.0, 3.0],  # 1 front
            [3.0, 3.0],  # 2 dominated by 1
            [4.0, 1.0],  # 3 front
            [5.0, 1.0],  # 4 dominated by 3
            [2.5, 4.0],  # 5 dominated by 1
            [6.0, 0.5],  # 6 front
        ]
    )
    assert sorted(non_dominated(F).tolist()) == [0, 1, 3, 6]
    assert non_dominated(np.zeros((0, 2))).tolist() == []
    assert non_dominated(np.array([[3.0, 3.0]])).tolist() == [0]


def test_non_dominated_three_objectives_and_duplicates():
    F = np.array([[1, 2, 3], [2, 1, 3], [1, 2, 4], [3, 3, 1], [2, 2, 3]], dtype=float)
    assert sorted(non_dominated(F).tolist()) == [0, 1, 3]


def test_select_returns_exactly_the_front_best_first():
    F = np.array([[3.0, 1.0], [1.0, 5.0], [2.0, 3.0], [2.5, 4.0], [1.5, 6.0], [4.0, 0.5]])
    chosen = select_architectures(records(F), n_tradeoffs=0)
    assert [s.record["arch"] for s in chosen] == ["a1", "a2", "a0", "a5"]
    assert [s.name for s in chosen] == ["front_00", "front_01", "front_02", "front_03"]
    assert chosen[0].reasons == ("non_dominated", "best_first_objective")
    assert all(s.reasons == ("non_dominated",) for s in chosen[1:])


def test_select_single_objective_picks_the_best():
    F = np.array([[0.5], [0.2], [0.9]])
    chosen = select_architectures(records(F), n_tradeoffs=3)
    assert [s.record["arch"] for s in chosen] == ["a1"]
    assert "high_tradeoff" not in chosen[0].reasons


def test_select_ignores_failed_records():
    F = np.array([[-100.0, -100.0], [1.0, 2.0], [2.0, 1.0], [3.0, 3.0]])
    chosen = select_architectures(records(F, failed={0}), n_tradeoffs=1)
    assert sorted(s.record["arch"] for s in chosen) == ["a1", "a2"]
    assert select_architectures(records(F[:1], failed={0}), n_tradeoffs=1) == []
    assert select_architectures([], n_tradeoffs=1) == []


def test_select_marks_the_knee_as_high_tradeoff():
    F = knee_front()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(F))
    recs = records(F[order])
    knee = f"a{int(np.flatnonzero(order == 5)[0])}"
    chosen = select_architectures(recs, n_tradeoffs=1)
    assert len(chosen) == len(F)
    marked = [s.record["arch"] for s in chosen if "high_tradeoff" in s.reasons]
    assert marked == [knee]
    # the front comes back sorted by the first objective
    firsts = [s.record["F"][0] for s in chosen]
    assert firsts == sorted(firsts)


def test_tradeoff_scores_rank_the_knee_first():
    mu = tradeoff_scores(knee_front())
    assert int(np.argmax(mu)) == 5
    assert mu[5] > 5 * np.delete(mu, 5).max()
    assert tradeoff_scores(knee_front()[:2]).tolist() == [0.0, 0.0]


def test_more_tradeoffs_than_points_marks_each_point_once():
    F = knee_front()
    chosen = select_architectures(records(F), n_tradeoffs=100)
    assert sum("high_tradeoff" in s.reasons for s in chosen) <= len(F)
    assert any(s.record["arch"] == "a5" and "high_tradeoff" in s.reasons for s in chosen)


# --- hypervolume ---------------------------------------------------------------------------


def test_hypervolume_of_a_known_set():
    F = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    ref = np.array([4.0, 4.0])
    # strips x in [1,2): 1, [2,3): 2, [3,4): 3
    assert hypervolume(F, ref) == pytest.approx(6.0)
    # dominated points and points beyond the reference add nothing
    more = np.r_[F, [[3.0, 3.0], [5.0, 0.0], [2.5, 2.5]]]
    assert hypervolume(more, ref) == pytest.approx(6.0)
    assert hypervolume(np.array([[0.0, 0.0]]), ref) == pytest.approx(16.0)
    assert hypervolume(np.zeros((0, 2)), ref) == 0.0


def test_hypervolume_three_objectives():
    F = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    ref = np.array([2.0, 2.0, 2.0])
    # box 2*2*1 + box 1*1*2 - overlap 1*1*1
    assert hypervolume(F, ref) == pytest.approx(5.0)


def test_reference_point_is_just_beyond_the_worst_value():
    F = np.array([[-0.9, 10.0], [-0.5, 20.0], [-0.7, 15.0]])
    ref = reference_point(F)
    assert ref[0] == pytest.approx(-0.5 + 0.005)
    assert ref[1] == pytest.approx(20.2)
    assert np.all(ref > F.max(0))
    assert np.all(reference_point(np.zeros((2, 2))) > 0)
