"""NSGANetV2's integer polynomial mutation against a transcription of pymoo 0.4.1's operator."""

from __future__ import annotations

import numpy as np
import pytest
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair

from nasx.search.operators import IntegerPolynomialMutation


def reference_int_pm(X: np.ndarray, xl: float, xu: float, eta: float, rng) -> np.ndarray:
    """pymoo 0.4.1 ``IntegerFromFloatMutation(PolynomialMutation(eta, prob=None))``, by hand.

    ``apply_float_operation`` widens the bounds by 0.5 - 1e-16, ``PolynomialMutation._do``
    mutates each variable with probability 1 / n_var (Deb's polynomial mutation, values put
    back in bounds), and the result is rounded to the nearest integer.
    """
    lo, hi = xl - (0.5 - 1e-16), xu + (0.5 - 1e-16)
    Y = X.astype(float).copy()
    do = rng.random(X.shape) < 1.0 / X.shape[1]
    x = Y[do]
    d1, d2 = (x - lo) / (hi - lo), (hi - x) / (hi - lo)
    r = rng.random(x.shape)
    p = 1.0 / (eta + 1.0)
    left = np.power(2 * r + (1 - 2 * r) * np.power(1 - d1, eta + 1), p) - 1
    right = 1 - np.power(2 * (1 - r) + 2 * (r - 0.5) * np.power(1 - d2, eta + 1), p)
    y = x + np.where(r <= 0.5, left, right) * (hi - lo)
    Y[do] = np.clip(y, lo, hi)
    return np.round(Y).astype(int)


def frequencies(Y: np.ndarray, n_values: int) -> np.ndarray:
    return np.bincount(Y.ravel(), minlength=n_values) / Y.size


@pytest.mark.parametrize(("start", "upper"), [(0, 2), (2, 2), (0, 4), (4, 4), (2, 4)])
def test_distribution_matches_the_reference_operator(start: int, upper: int) -> None:
    n, n_var = 40_000, 6
    X = np.full((n, n_var), start)
    problem = Problem(n_var=n_var, n_obj=1, xl=0, xu=upper, vtype=int)
    ours = IntegerPolynomialMutation(eta=1.0)._do(problem, X, random_state=np.random.default_rng(0))
    ref = reference_int_pm(X, 0, upper, 1.0, np.random.default_rng(1))
    assert ours.dtype.kind == "i" and ours.min() >= 0 and ours.max() <= upper
    f_ours, f_ref = frequencies(ours, upper + 1), frequencies(ref, upper + 1)
    # 240,000 draws: the sampling error of each frequency is below 0.001
    assert f_ours == pytest.approx(f_ref, abs=0.004)
    # a mutated gene leaves its value with the reference's probability (1/6 of draws mutate)
    assert 1 - f_ours[start] == pytest.approx(1 - f_ref[start], abs=0.004)


def test_bound_values_are_reached_as_often_as_in_the_reference() -> None:
    # pymoo 0.6's PM with a rounding repair, on unwidened bounds, halves the chance of moving
    # from the middle to a bound value: the widening is what NSGANetV2's operator adds
    n, n_var, upper = 40_000, 6, 2
    X = np.full((n, n_var), 1)
    problem = Problem(n_var=n_var, n_obj=1, xl=0, xu=upper, vtype=int)
    ours = IntegerPolynomialMutation(eta=1.0)._do(problem, X, random_state=np.random.default_rng(0))
    ref = reference_int_pm(X, 0, upper, 1.0, np.random.default_rng(1))
    plain_pop = PM(eta=1.0, prob=1.0, vtype=float, repair=RoundingRepair()).do(
        problem, Population.new(X=X.astype(float)), random_state=np.random.default_rng(2)
    )
    plain = RoundingRepair().do(problem, plain_pop).get("X").astype(int)
    to_bounds = [frequencies(Y, upper + 1)[[0, 2]].sum() for Y in (ours, ref, plain)]
    assert to_bounds[0] == pytest.approx(to_bounds[1], abs=0.004)
    assert to_bounds[2] < 0.8 * to_bounds[1]


def test_whole_population_step_mutates_only_within_bounds() -> None:
    problem = Problem(n_var=4, n_obj=1, xl=0, xu=[2, 2, 4, 16], vtype=int)
    X = np.array([[0, 2, 4, 16], [1, 1, 2, 8]] * 50)
    out = IntegerPolynomialMutation().do(
        problem, Population.new(X=X), random_state=np.random.default_rng(0)
    )
    Y = out.get("X")
    assert (Y >= 0).all() and (np.array([2, 2, 4, 16]) >= Y).all()
    assert (Y != X).any()
