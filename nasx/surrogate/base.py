"""The surrogate contract: an accuracy predictor fitted on architecture encodings."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from scipy.stats import kendalltau, spearmanr


class Surrogate(ABC):
    """Base class of every ``surrogate=`` option (template method: `fit` -> `_fit`).

    A surrogate maps an ``(n, n_features)`` matrix of architecture encodings (the raw integer
    genes, as NSGANetV2 feeds them) to one predicted target per row (NSGANetV2 predicts the
    top-1 error; lower is better, but a surrogate never assumes a direction). `fit` checks the
    data and calls `_fit`; `predict` checks that the surrogate was fitted and that the feature
    count matches, then calls `_predict`.

    Randomness comes from ``seed`` only, never from a global generator. Every `fit` starts
    again from the seed (`rng` is rebuilt), so fitting the same data twice gives the same model.

    Args:
        seed: seed of the surrogate's own generators (the run passes its seed).
    """

    name: str = "surrogate"

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.n_features: int | None = None

    @property
    def winner(self) -> str:
        """The name of the model that makes the predictions (the surrogate's own name)."""
        return self.name

    @property
    def is_fitted(self) -> bool:
        """Whether `fit` has completed."""
        return self.n_features is not None

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        """Fit on encodings ``X`` of shape ``(n, n_features)`` and targets ``y`` of shape ``(n,)``.

        ``y`` of shape ``(n, 1)`` is accepted and flattened. Raises ``ValueError`` on any other
        shape, on fewer than two rows, or on non-finite values.
        """
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        if X.ndim != 2:
            raise ValueError(
                f"{type(self).__name__}.fit: X must be 2-D (n_samples, n_features), "
                f"got shape {X.shape}"
            )
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"{type(self).__name__}.fit: y must have shape ({X.shape[0]},) to match X "
                f"{X.shape}, got {y.shape}"
            )
        if X.shape[0] < 2 or X.shape[1] < 1:
            raise ValueError(
                f"{type(self).__name__}.fit: need at least 2 samples and 1 feature, "
                f"got X of shape {X.shape}"
            )
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise ValueError(f"{type(self).__name__}.fit: X and y must be finite (no nan/inf)")
        self.n_features = None
        self.rng = np.random.default_rng(self.seed)
        self._fit(X, y)
        self.n_features = X.shape[1]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted targets for the rows of ``X`` (``(m, n_features)``), as a 1-D array."""
        if self.n_features is None:
            raise RuntimeError(f"{type(self).__name__}.predict called before fit: call fit first")
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"{type(self).__name__}.predict: X must have shape (m, {self.n_features}) "
                f"like the fitted data, got {X.shape}"
            )
        if X.shape[0] == 0:
            return np.zeros(0)
        return np.asarray(self._predict(X), dtype=float).reshape(X.shape[0])

    @abstractmethod
    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        """Fit on checked float data (``X`` 2-D, ``y`` 1-D, finite); use `rng` for randomness."""

    @abstractmethod
    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Predict for checked float rows with the fitted feature count."""


def average_duplicates(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Collapse identical rows of ``X`` into one, with the mean of their targets.

    Interpolators (RBF, Kriging) cannot pass through two different values at one point; the
    mean is the limit their regularised fits tend to. Rows come back in sorted order.
    """
    uniq, inverse = np.unique(X, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    sums = np.bincount(inverse, weights=y, minlength=len(uniq))
    counts = np.bincount(inverse, minlength=len(uniq))
    return uniq, sums / counts


def fit_quality(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """RMSE, Spearman rho and Kendall tau of predictions against truths (NSGANetV2 ``utils``).

    A correlation that is undefined (a constant vector, fewer than two values) is 0.0, not
    nan, so the numbers can be averaged and compared.
    """
    p = np.asarray(pred, dtype=float).reshape(-1)
    t = np.asarray(truth, dtype=float).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"fit_quality: pred {p.shape} and truth {t.shape} differ in length")
    rmse = float(np.sqrt(np.mean((p - t) ** 2))) if p.size else float("nan")
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return {"rmse": rmse, "rho": 0.0, "tau": 0.0}
    rho = float(spearmanr(p, t)[0])
    tau = float(kendalltau(p, t)[0])
    return {
        "rmse": rmse,
        "rho": 0.0 if np.isnan(rho) else rho,
        "tau": 0.0 if np.isnan(tau) else tau,
    }
