"""Accuracy predictors (``surrogate=``): fit quality, models on known functions, AS, configs."""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

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

CONF = Path(__file__).resolve().parents[1] / "conf" / "surrogate"

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
    assert pred.shape == (len(Xt),) and np.isfinite(pred).all()
    assert fit_quality(pred, yt)["tau"] > min_tau
    assert model.winner == model.name == name


def test_rbf_interpolates_training_points() -> None:
    X, y = grid_problem(60, seed=3)
    exact = RBFSurrogate(smoothing=0.0)
    exact.fit(X, y)
    np.testing.assert_allclose(exact.predict(X), y, atol=1e-8)
    default = RBFSurrogate()  # pySOT's eta = 1e-6
    default.fit(X, y)
    np.testing.assert_allclose(default.predict(X), y, atol=1e-4)


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
    assert 1e-5 <= gp.theta <= 100.0


def test_gp_theta_to_length_scale_mapping() -> None:
    # exp(-theta d^2) == exp(-d^2 / (2 l^2))
    for theta in (1e-5, 1.0, 100.0):
        length = theta_to_length_scale(theta)
        assert math.exp(-theta * 0.7**2) == pytest.approx(math.exp(-(0.7**2) / (2 * length**2)))
    assert theta_to_length_scale(1.0) == pytest.approx(1 / math.sqrt(2))


def test_carts_prediction_is_the_mean_of_its_trees() -> None:
    X, y = grid_problem(50, n_genes=6, seed=5)
    model = CartsSurrogate(n_tree=25, seed=3)
    model.fit(X, y)
    assert len(model.trees) == 25
    sizes = {len(features) for features, _ in model.trees}
    assert min(sizes) >= 1 and max(sizes) <= 6 and len(sizes) > 1  # random subset sizes
    Xq = X[:7] + 0.5
    by_hand = np.mean([tree.predict(Xq[:, f]) for f, tree in model.trees], axis=0)
    np.testing.assert_allclose(model.predict(Xq), by_hand, rtol=1e-6)
    again = CartsSurrogate(n_tree=25, seed=3, n_jobs=2)  # joblib workers: the same model
    again.fit(X, y)
    np.testing.assert_array_equal(again.predict(Xq), model.predict(Xq))


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
    assert model.winner == best and model.name == "as"
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
    assert model.predict(X[:4]).shape == (4,)
    assert model.winner in {"rbf", "gp", "carts", "mlp"}
