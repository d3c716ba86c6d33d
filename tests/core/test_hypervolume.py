"""Hypervolume as NSGANetV2/CNAS report it: the dominated fraction of [ideal, 1.01 x DOE worst]."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nasx.evaluator import objective_units
from nasx.hypervolume import HypervolumeBox, ObjectiveUnits, hypervolume
from nasx.metric import AccuracyMetric, AngleMetric, BenchmarkMetric, SynflowMetric
from nasx.metric.robustness import Top1RobustMetric


def test_accuracy_fraction_is_measured_as_error_in_percent():
    # maximised accuracy (a fraction) stored as -accuracy, and FLOPs
    F = np.array([[-0.9, 20.0], [-0.5, 10.0], [-0.7, 15.0]])
    box = HypervolumeBox.from_doe(F, objective_units(AccuracyMetric(), 1))
    # paper units: errors 10, 50, 30 %; reference 1.01 x (50 %, 20 FLOPs)
    assert box.ref_paper == pytest.approx([50.5, 20.2])
    # in F units the reference is an accuracy *below* the worst one (0.495 < 0.5)
    assert box.ref == pytest.approx([-0.495, 20.2])
    assert np.all(box.ref > F.max(axis=0))
    # strips by hand: (10..30) x (20.2-20) + (30..50) x (20.2-15) + (50..50.5) x (20.2-10)
    volume = 20 * 0.2 + 20 * 5.2 + 0.5 * 10.2
    assert box.fraction(F) == pytest.approx(volume / (50.5 * 20.2))
    assert box.raw(F) == pytest.approx(volume / 100)  # F's own units: accuracy as a fraction


def test_minimised_metric_box_starts_at_zero():
    # top1_robust (an error-like score, ideal 0) and params
    F = np.array([[5.0, 2.0], [3.0, 4.0]])
    box = HypervolumeBox.from_doe(F, objective_units(Top1RobustMetric(), 1))
    assert box.ideal.tolist() == [0.0, 0.0]
    assert box.ref == pytest.approx([5.05, 4.04])
    volume = (5.0 - 3.0) * (4.04 - 4.0) + (5.05 - 5.0) * (4.04 - 2.0)
    assert box.fraction(F) == pytest.approx(volume / (5.05 * 4.04))
    assert box.raw(F) == pytest.approx(volume)
    # a point at the ideal corner dominates the whole box
    assert box.fraction(np.zeros((1, 2))) == pytest.approx(1.0)


def test_table_accuracy_reference_lies_beyond_the_worst_doe_point():
    # the case: metric=benchmark (accuracy in %), latency; worst DOE accuracy 33.27
    F = np.array([[-33.27, 10.0], [-90.0, 18.2], [-80.0, 12.0]])
    box = HypervolumeBox.from_doe(F, objective_units(BenchmarkMetric(), 1))
    assert box.ref[0] == pytest.approx(-100 + 1.01 * (100 - 33.27))
    assert -box.ref[0] < 33.27  # an accuracy below the worst: every DOE point counts
    assert box.ref[1] == pytest.approx(1.01 * 18.2)
    assert 0 < box.fraction(F) < 1
    # every DOE point adds volume: dropping any one shrinks the HV
    for i in range(3):
        assert box.raw(np.delete(F, i, axis=0)) < box.raw(F)


def test_latency_column_as_metric_is_minimised_from_zero():
    units = objective_units(BenchmarkMetric("latency_ms_pixel3", higher_is_better=False), 0)
    assert units.ideal == (0.0,) and units.scale == (1.0,)


def test_bounded_and_unbounded_maximised_scores():
    angle = objective_units(AngleMetric(), 0)
    assert angle.ideal == (-math.pi,)
    assert objective_units(AngleMetric(normalize=True), 0).ideal == (-1.0,)
    # an unbounded proxy: the box starts one DOE range beyond the DOE's best score
    units = objective_units(SynflowMetric(), 1)
    assert math.isnan(units.ideal[0])
    F = np.array([[-300.0, 1.0], [-100.0, 2.0]])
    box = HypervolumeBox.from_doe(F, units)
    assert box.ideal[0] == pytest.approx(-500.0)
    assert 0 < box.fraction(F) < 1
    # a later score beyond the box's ideal counts up to the corner: the fraction stays <= 1
    assert box.fraction(np.array([[-10_000.0, 0.0]])) == pytest.approx(1.0)


def test_plain_units_equal_pymoo_hypervolume_over_the_box():
    F = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    box = HypervolumeBox(ObjectiveUnits((0.0, 0.0), (1.0, 1.0)), np.zeros(2), np.array([4.0, 4.0]))
    assert box.raw(F) == pytest.approx(hypervolume(F, np.array([4.0, 4.0])))
    assert box.fraction(F) == pytest.approx(6.0 / 16.0)
    # rows beyond the reference add nothing
    assert box.raw(np.r_[F, [[5.0, 0.5]]]) == pytest.approx(6.0)
