"""Accuracy predictors (``surrogate=``): fit quality, models on known functions, AS, configs."""

from __future__ import annotations

import importlib.util
import inspect
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from scipy.spatial.distance import cdist

import nasx.surrogate as S
from nasx.surrogate import (
    AdaptiveSwitching,
    CartsSurrogate,
    GPSurrogate,
    MLPSurrogate,
    RBFSurrogate,
    Surrogate,
    fit_quality,
    make_surrogate,
)
from nasx.surrogate.gp import theta_to_length_scale
from tests.conftest import ROOT

CONF = Path(__file__).resolve().parents[2] / "conf" / "surrogate"

# cheap settings per surrogate, for tests that do not measure quality
FAST: dict[str, dict[str, Any]] = {
    "rbf": {},
    "gp": {},
    "carts": {"n_tree": 30},
    "mlp": {"epochs": 30},
    "as": {"pool": ["rbf", "carts"], "n_folds": 3, "members": {"carts": {"n_tree": 10}}},
}


def grid_problem(
    n: int, n_genes: int = 8, seed: int = 0, noise: float = 0.02
) -> tuple[np.ndarray, np.ndarray]:
    """Integer genes 0..4 and a smooth target: a linear trend plus a quadratic bowl."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 5, size=(n, n_genes)).astype(float)
    w = np.linspace(1.0, 2.0, n_genes)
    y = X @ w / n_genes + 0.15 * ((X - 2.0) ** 2) @ w / n_genes
    return X, y + rng.normal(0.0, noise, n)


@pytest.fixture(scope="module")
def train_test() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = grid_problem(120, seed=1)
    Xt, yt = grid_problem(200, seed=2, noise=0.0)
    return X, y, Xt, yt


# --- fit_quality --------------------------------------------------------------------------


def test_fit_quality_matches_hand_computed_values() -> None:
    q = fit_quality(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0]))
    assert q["rmse"] == pytest.approx(math.sqrt(0.5))  # errors 0, -1, 1, 0
    assert q["rho"] == pytest.approx(0.8)  # 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15)
    assert q["tau"] == pytest.approx(4 / 6)  # 5 concordant pairs, 1 discordant, of 6
    rev = fit_quality(np.array([3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0]))
    assert (rev["rho"], rev["tau"]) == (pytest.approx(-1.0), pytest.approx(-1.0))
    assert set(q) == {"rmse", "rho", "tau"}


def test_fit_quality_constant_vector_gives_zero_correlations() -> None:
    q = fit_quality(np.full(4, 2.0), np.array([1.0, 2.0, 3.0, 5.0]))
    assert q == {"rmse": pytest.approx(math.sqrt((1 + 0 + 1 + 9) / 4)), "rho": 0.0, "tau": 0.0}
    assert fit_quality(np.array([1.0, 2.0]), np.array([3.0, 3.0]))["tau"] == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        fit_quality(np.zeros(3), np.zeros(4))


# --- every surrogate on a known function ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "min_tau"),
    [
        ("rbf", {}, 0.9),
        ("gp", {}, 0.9),
        ("carts", {"n_tree": 200}, 0.55),
        ("mlp", {"epochs": 300}, 0.75),
    ],
)
def test_surrogate_ranks_unseen_architectures(
    train_test: tuple[np.ndarray, ...], name: str, kwargs: dict[str, Any], min_tau: float
) -> None:
    X, y, Xt, yt = train_test
    model = make_surrogate(name, seed=0, **kwargs)
    model.fit(X, y)
    pred = model.predict(Xt)
    assert np.isfinite(pred).all()
    assert fit_quality(pred, yt)["tau"] > min_tau


def cubic_rbf_by_hand(X: np.ndarray, y: np.ndarray, Xq: np.ndarray, eta: float) -> np.ndarray:
    """pySOT's interpolant: [[Phi + eta I, P], [P^T, 0]] [w; c] = [y; 0], phi(r) = r**3."""
    n, d = X.shape
    phi = cdist(X, X) ** 3
    P = np.hstack([np.ones((n, 1)), X])  # the linear tail: 1, x_1 .. x_d
    A = np.block([[phi + eta * np.eye(n), P], [P.T, np.zeros((d + 1, d + 1))]])
    sol = np.linalg.solve(A, np.concatenate([y, np.zeros(d + 1)]))
    w, c = sol[:n], sol[n:]
    return cdist(Xq, X) ** 3 @ w + np.hstack([np.ones((len(Xq), 1)), Xq]) @ c


@pytest.mark.parametrize("eta", [0.0, 1e-6, 0.1])
def test_rbf_is_the_cubic_interpolant_with_a_linear_tail(eta: float) -> None:
    rng = np.random.default_rng(10)
    X = np.unique(rng.integers(0, 5, size=(15, 3)).astype(float), axis=0)
    y = rng.normal(size=len(X))
    Xq = rng.uniform(-1.0, 6.0, size=(20, 3))  # between the genes' values and beyond them
    model = RBFSurrogate(smoothing=eta)
    model.fit(X, y)
    # another kernel, no tail or a constant tail, or the regulariser's sign flipped (0.1)
    # move the predictions at new points by far more than this
    np.testing.assert_allclose(model.predict(Xq), cubic_rbf_by_hand(X, y, Xq, eta), atol=1e-9)
    if eta == 0.0:
        np.testing.assert_allclose(model.predict(X), y, atol=1e-9)


def test_rbf_survives_duplicate_rows_and_degenerate_data() -> None:
    X, y = grid_problem(40, seed=4)
    Xd = np.vstack([X, X[:10]])
    yd = np.concatenate([y, y[:10] + 1.0])  # the same architecture measured twice, differently
    model = RBFSurrogate(smoothing=0.0)
    model.fit(Xd, yd)
    np.testing.assert_allclose(model.predict(X[:10]), y[:10] + 0.5, atol=1e-8)  # the mean
    np.testing.assert_allclose(model.predict(X[10:]), y[10:], atol=1e-8)
    # a gene never varied and fewer rows than genes: the linear tail alone would be singular
    Xc = np.hstack([X[:6], np.zeros((6, 20))])
    model.fit(Xc, y[:6])
    np.testing.assert_allclose(model.predict(Xc), y[:6], atol=1e-8)
    model.fit(np.ones((3, 4)), np.array([1.0, 2.0, 3.0]))  # one distinct row
    np.testing.assert_allclose(model.predict(np.zeros((2, 4))), [2.0, 2.0])


def test_gp_beats_a_constant_predictor(train_test: tuple[np.ndarray, ...]) -> None:
    X, y, Xt, yt = train_test
    gp = GPSurrogate()
    gp.fit(np.vstack([X, X[:5]]), np.concatenate([y, y[:5]]))  # duplicates are tolerated
    rmse = fit_quality(gp.predict(Xt), yt)["rmse"]
    baseline = fit_quality(np.full(len(yt), y.mean()), yt)["rmse"]
    assert rmse < 0.3 * baseline


def test_gp_linear_trend_extrapolates_a_linear_function_exactly() -> None:
    # the trend [1, x] beta takes all of a linear target, leaving the process nothing: exact
    # far outside the data, where a constant-mean GP reverts to its mean
    rng = np.random.default_rng(11)
    X = rng.uniform(0.0, 4.0, size=(40, 3))
    w = np.array([1.5, -2.0, 0.5])
    gp = GPSurrogate()
    gp.fit(X, X @ w + 3.0)
    far = rng.uniform(10.0, 20.0, size=(5, 3))
    np.testing.assert_allclose(gp.predict(far), far @ w + 3.0, atol=1e-8)


def test_gp_theta_follows_the_length_scale_of_the_target() -> None:
    # exp(-theta d**2): a target varying 10x faster needs a much larger theta
    rng = np.random.default_rng(12)
    X = rng.uniform(0.0, 4.0, size=(60, 2))
    theta = {}
    for k in (0.3, 3.0):
        gp = GPSurrogate()
        gp.fit(X, np.sin(k * X[:, 0]) + np.cos(k * X[:, 1]))
        theta[k] = gp.theta
    assert theta[3.0] > 10 * theta[0.3]


def test_gp_theta_bounds_are_the_references_and_bind() -> None:
    gp = GPSurrogate()
    X, y = grid_problem(30, n_genes=3, seed=13)
    gp.fit(X, y)
    assert gp._gp is not None  # the reference's thetaL, thetaU = 1e-5, 100 as length scales
    low, high = gp._gp.kernel_.k2.length_scale_bounds
    assert (low, high) == pytest.approx((1 / math.sqrt(200), 1 / math.sqrt(2e-5)))
    # noise wants a short length scale (theta ~30 here): an upper bound of 1 must hold it
    noise = np.random.default_rng(14).normal(size=30)
    capped = GPSurrogate(theta0=0.5, theta_bounds=(1e-5, 1.0))
    capped.fit(X, noise)
    assert capped.theta == pytest.approx(1.0)
    free = GPSurrogate()
    free.fit(X, noise)
    assert free.theta > 2.0


def test_gp_theta_to_length_scale_mapping() -> None:
    # exp(-theta d^2) == exp(-d^2 / (2 l^2))
    for theta in (1e-5, 1.0, 100.0):
        length = theta_to_length_scale(theta)
        assert math.exp(-theta * 0.7**2) == pytest.approx(math.exp(-(0.7**2) / (2 * length**2)))
    assert theta_to_length_scale(1.0) == pytest.approx(1 / math.sqrt(2))


@pytest.mark.parametrize("builder", ["shared", "sklearn"])
def test_carts_prediction_is_the_mean_of_its_trees(builder: str) -> None:
    X, y = grid_problem(50, n_genes=6, seed=5)
    model = CartsSurrogate(n_tree=25, builder=builder, seed=3)
    model.fit(X, y)
    Xq = X[:7] + 0.5
    per_tree = model.predict_trees(Xq)
    assert per_tree.shape == (25, 7) and len(np.unique(per_tree[:, 0])) > 1
    np.testing.assert_allclose(model.predict(Xq), per_tree.mean(axis=0), rtol=1e-12)
    if builder == "sklearn":  # the reference: sklearn trees on the drawn gene subsets
        assert len(model.trees) == 25 and model.forest is None
        for (features, tree), row, mask in zip(model.trees, per_tree, model.subsets, strict=True):
            np.testing.assert_array_equal(np.flatnonzero(mask), features)
            np.testing.assert_array_equal(tree.predict(Xq[:, features]), row)


def test_carts_subset_sizes_are_uniform_over_one_to_all_genes() -> None:
    X, y = grid_problem(20, n_genes=6, seed=5)
    model = CartsSurrogate(n_tree=600, seed=0)
    model.fit(X, y)
    counts = np.bincount(model.subsets.sum(axis=1), minlength=7)
    assert counts[0] == 0 and (counts[1:] > 60).all() and (counts[1:] < 140).all()  # ~100 each


def test_carts_shared_builder_grows_sklearns_trees_without_ties() -> None:
    # one gene: no two genes can tie, so every tree is the tree sklearn grows, and the
    # thresholds fall where sklearn's do (unseen values between and beyond the training ones)
    rng = np.random.default_rng(15)
    X = rng.integers(0, 40, size=(80, 1)).astype(float)
    y = rng.normal(size=80)
    Xq = np.linspace(-2.0, 42.0, 177)[:, None]
    ref, fast = (CartsSurrogate(n_tree=20, builder=b, seed=4) for b in ("sklearn", "shared"))
    ref.fit(X, y)
    fast.fit(X, y)
    assert fast.forest is not None and not fast.trees
    np.testing.assert_allclose(fast.predict_trees(Xq), ref.predict_trees(Xq), atol=1e-12)


def test_carts_shared_builder_matches_the_reference_ensemble() -> None:
    # several genes: the same subsets; trees may break ties differently, the ensemble agrees
    X, y = grid_problem(90, n_genes=6, seed=16)
    Xq, _ = grid_problem(300, n_genes=6, seed=17)
    ref, fast = (CartsSurrogate(n_tree=300, builder=b, seed=5) for b in ("sklearn", "shared"))
    ref.fit(X, y)
    fast.fit(X, y)
    np.testing.assert_array_equal(fast.subsets, ref.subsets)
    np.testing.assert_allclose(fast.predict(X), ref.predict(X), atol=1e-12)  # pure leaves
    p_ref, p_fast = ref.predict(Xq), fast.predict(Xq)
    assert fit_quality(p_fast, p_ref)["tau"] > 0.97  # 0.99 here
    assert np.abs(p_fast - p_ref).mean() < 0.02 * y.std()  # 0.0065 here


def test_carts_shared_builder_is_deterministic_and_thread_independent() -> None:
    X, y = grid_problem(60, n_genes=8, seed=18)
    Xq, _ = grid_problem(40, n_genes=8, seed=19)
    preds = []
    for seed, n_jobs in ((0, 1), (0, 1), (0, 2), (1, 1)):
        model = CartsSurrogate(n_tree=200, n_jobs=n_jobs, seed=seed)
        model.fit(X, y)
        preds.append(model.predict(Xq))
    np.testing.assert_array_equal(preds[0], preds[1])
    np.testing.assert_array_equal(preds[0], preds[2])  # tie-breaking does not see threads
    assert not np.allclose(preds[0], preds[3])


def test_carts_shared_builder_falls_back_on_many_valued_genes() -> None:
    rng = np.random.default_rng(20)
    X = np.column_stack([rng.normal(size=100), rng.integers(0, 3, 100)])  # 100 values
    model = CartsSurrogate(n_tree=5, seed=0)
    model.fit(X, rng.normal(size=100))
    assert model.forest is None and len(model.trees) == 5
    with pytest.raises(ValueError, match="builder"):
        CartsSurrogate(builder="fast")


def test_mlp_keeps_the_best_validation_weights() -> None:
    X, y = grid_problem(40, n_genes=6, seed=6, noise=0.3)  # small and noisy: it overfits
    model = MLPSurrogate(epochs=150, lr=3e-3, seed=0)
    model.fit(X, y)
    losses = np.array(model.val_losses)
    assert len(losses) == 150 and len(model.val_index) == 40 - int(40 * 0.8)
    assert model.best_epoch == int(np.argmin(losses)) < 149
    assert model.best_val_loss == pytest.approx(losses.min())
    # the returned net scores the best loss on the validation rows, not the last epoch's
    v = model.val_index
    target = (y[v] - model._y_mean) / model._y_scale
    pred = (model.predict(X[v]) - model._y_mean) / model._y_scale
    loss = torch.nn.functional.smooth_l1_loss(torch.tensor(pred), torch.tensor(target))
    assert float(loss) == pytest.approx(losses.min(), rel=1e-4)
    assert float(loss) != pytest.approx(losses[-1], rel=1e-4)


def test_mlp_is_deterministic_per_seed() -> None:
    X, y = grid_problem(30, n_genes=6, seed=7)
    threads = torch.get_num_threads()
    preds = []
    for seed in (0, 0, 1):
        model = MLPSurrogate(epochs=20, seed=seed)
        model.fit(X, y)
        preds.append(model.predict(X))
    np.testing.assert_array_equal(preds[0], preds[1])
    assert not np.allclose(preds[0], preds[2])
    assert torch.get_num_threads() == threads  # the thread setting is restored


# --- adaptive switching ------------------------------------------------------------------


def step_problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A few thresholds on single genes: trees fit it exactly, interpolants do not."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 5, size=(n, 8)).astype(float)
    y = 1.0 * (X[:, 0] >= 3) + 0.5 * (X[:, 1] >= 2) + 0.25 * (X[:, 2] == 4)
    return X, y + rng.normal(0.0, 0.01, n)


@pytest.mark.parametrize("order", [1, -1])
@pytest.mark.parametrize(
    ("problem", "best", "other", "members"),
    [
        ("smooth", "rbf", "carts", {"carts": {"n_tree": 5}}),
        ("step", "carts", "rbf", {"carts": {"n_tree": 50}}),
    ],
)
def test_as_picks_the_clearly_best_member(
    problem: str, best: str, other: str, members: dict[str, Any], order: int
) -> None:
    X, y = grid_problem(120, seed=1) if problem == "smooth" else step_problem(120, seed=1)
    pool = [other, best][::order]
    model = AdaptiveSwitching(pool=pool, n_folds=5, members=members, seed=0)
    model.fit(X, y)
    assert model.winner == best
    assert set(model.cv_scores) == set(pool) and model.cv_taus.shape == (5, 2)
    score = {k: m - s for k, (m, s) in model.cv_scores.items()}
    assert score[best] > score[other] + 0.1
    j = pool.index(best)  # cv_scores are the mean and std of the per-fold taus
    assert model.cv_scores[best] == pytest.approx(
        (model.cv_taus[:, j].mean(), model.cv_taus[:, j].std())
    )
    # the winner is refitted on all the data, with its own seed, whatever the pool order
    refit = make_surrogate(best, seed=model._member_seeds()[best], **members.get(best, {}))
    refit.fit(X, y)
    Xq, _ = grid_problem(20, seed=3)
    np.testing.assert_allclose(model.predict(Xq), refit.predict(Xq))


W = np.arange(1.0, 7.0)


class _Erratic(Surrogate):
    """A perfect ranker, except that it ranks backwards when trained on exactly 70 rows."""

    name = "erratic"

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self.sign = -1.0 if len(y) == 70 else 1.0

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.sign * (X @ W)


class _Steady(Surrogate):
    """A mediocre ranker: the truth plus seeded noise."""

    name = "steady"

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        pass

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return X @ W + self.rng.normal(0.0, 12.0, len(X))


def test_as_rule_is_mean_minus_std(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(S.SURROGATES, "erratic", _Erratic)
    monkeypatch.setitem(S.SURROGATES, "steady", _Steady)
    X = np.random.default_rng(0).integers(0, 5, size=(81, 6)).astype(float)
    y = X @ W
    # 81 rows in 8 folds: one fold of 11 (train 70, the erratic one flips), seven of 10
    model = AdaptiveSwitching(pool=["erratic", "steady"], n_folds=8, seed=0)
    model.fit(X, y)
    (m_err, s_err), (m_std, s_std) = model.cv_scores["erratic"], model.cv_scores["steady"]
    assert sorted(model.cv_taus[:, 0]) == pytest.approx([-1.0] + [1.0] * 7)
    assert m_err > m_std  # the better mean...
    assert m_err - s_err < m_std - s_std  # ...but the worse mean - std
    assert model.winner == "steady"


def test_as_is_seeded_and_checks_its_arguments(train_test: tuple[np.ndarray, ...]) -> None:
    X, y, _, _ = train_test
    kw = FAST["as"]
    a, b, c = (AdaptiveSwitching(**kw, seed=s) for s in (0, 0, 1))
    for m in (a, b, c):
        m.fit(X[:40], y[:40])
    assert a.cv_scores == b.cv_scores and a.cv_scores != c.cv_scores
    a.fit(X[:4], y[:4])  # fewer rows than folds: leave-one-out
    assert a.cv_taus.shape == (3, 2)
    with pytest.raises(ValueError, match="at least 3 samples"):
        a.fit(X[:2], y[:2])
    with pytest.raises(ValueError, match="unknown surrogates"):
        AdaptiveSwitching(pool=["rbf", "svm"])
    with pytest.raises(ValueError, match="seed"):
        AdaptiveSwitching(members={"rbf": {"seed": 3}})
    with pytest.raises(RuntimeError, match="before fit"):
        _ = AdaptiveSwitching().winner


# --- contract: errors and factory ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FAST))
def test_predict_before_fit_and_bad_shapes_raise(name: str) -> None:
    model = make_surrogate(name, seed=0, **FAST[name])
    X, y = grid_problem(30, n_genes=5, seed=8)
    with pytest.raises(RuntimeError, match="before fit"):
        model.predict(X)
    with pytest.raises(ValueError, match="2-D"):
        model.fit(X[0], y[:1])
    with pytest.raises(ValueError, match=r"y must have shape \(30,\)"):
        model.fit(X, y[:-1])
    with pytest.raises(ValueError, match="finite"):
        model.fit(X, np.where(np.arange(30) == 3, np.nan, y))
    model.fit(X, y[:, None])  # a column of targets is accepted
    assert not model.predict(X[:0]).size
    with pytest.raises(ValueError, match=r"shape \(m, 5\)"):
        model.predict(X[:, :4])
    with pytest.raises(ValueError, match=r"shape \(m, 5\)"):
        model.predict(X[0])


def test_make_surrogate_names_every_class() -> None:
    assert {k: type(make_surrogate(k, **FAST[k])) for k in FAST} == {
        "rbf": RBFSurrogate,
        "gp": GPSurrogate,
        "carts": CartsSurrogate,
        "mlp": MLPSurrogate,
        "as": AdaptiveSwitching,
    }
    with pytest.raises(ValueError, match="unknown surrogate"):
        make_surrogate("svm")


# --- config files -------------------------------------------------------------------------

YAMLS = sorted(p for p in CONF.glob("*.yaml") if p.stem != "none")


def test_every_surrogate_has_a_config() -> None:
    assert {p.stem for p in YAMLS} == set(FAST)


@pytest.mark.parametrize("path", YAMLS, ids=[p.stem for p in YAMLS])
def test_config_instantiates_and_fits(path: Path) -> None:
    from nasx.config import check_node

    node = OmegaConf.load(path)
    check_node("surrogate", node)
    cls = type(instantiate(node, seed=0))
    params = set(inspect.signature(cls).parameters) - {"seed"}
    assert set(node) - {"_target_"} == params  # every argument spelled out, seed left to the run
    small = OmegaConf.merge(node, FAST[path.stem])  # slow paper settings overridden here only
    model = instantiate(small, seed=0)
    X, y = grid_problem(30, n_genes=6, seed=9)
    model.fit(X, y)
    # the file holds the class defaults (the paper's values): the same model as the default
    default = make_surrogate(path.stem, seed=0, **FAST[path.stem])
    default.fit(X, y)
    np.testing.assert_array_equal(model.predict(X[:4]), default.predict(X[:4]))


# --- benchmark --------------------------------------------------------------------------------


def test_surrogate_cost_benchmark_quick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # its helpers: benchmarks/_results.py
    path = ROOT / "benchmarks" / "surrogate_cost.py"
    spec = importlib.util.spec_from_file_location("surrogate_cost", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    out = tmp_path / "RESULTS.md"
    out.write_text("# results\n\nkept\n")
    results = mod.main(["--quick", "--write-results", "--results", str(out)])
    assert [(r.archive, r.genes) for r in results] == [("NB201 40", 6), ("46 genes", 46)]
    for r in results:
        (before,), (after,) = r.runs["before"], r.runs["after"]
        # the same archive and seed on both sides: rbf is the same model, gp up to rounding
        assert before.taus["rbf"] == after.taus["rbf"]
        assert before.taus["gp"] == pytest.approx(after.taus["gp"], abs=1e-9)
        assert set(before.taus) == {"rbf", "gp", "carts"} and r.ratio > 0
    text = out.read_text()
    assert "kept" in text and text.count("surrogate_cost:start") == 1
    assert "| NB201 40 (40 x 6) |" in text
