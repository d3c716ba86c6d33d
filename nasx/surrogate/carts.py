"""Ensemble of regression trees on random feature subsets (NSGANetV2 ``carts``)."""

from __future__ import annotations

import numpy as np
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils.parallel import Parallel, delayed

from nasx.surrogate._forest import MAX_VALUES, Forest, grow_forest
from nasx.surrogate.base import Surrogate

BUILDERS = ("shared", "sklearn")


def _fit_tree(
    X: np.ndarray, y: np.ndarray, rows: np.ndarray, features: np.ndarray, seed: int
) -> DecisionTreeRegressor:
    tree = DecisionTreeRegressor(random_state=seed)
    return tree.fit(X[np.ix_(rows, features)], y[rows])


class CartsSurrogate(Surrogate):
    """NSGANetV2's ``CART``: the mean of ``n_tree`` default `DecisionTreeRegressor` s.

    For each tree the training rows are shuffled (every row kept: no bootstrap), a random
    feature subset of size uniform in ``[1, n_features]`` is drawn, and the tree is grown with
    sklearn's default settings on those columns. The prediction is the mean over trees.

    The paper's value ``n_tree=5000`` (its factory's; the class default there is 1000) is the
    default. Every draw (row shuffle, subset, tree seed) is made up front from the seed, the
    same draws whichever ``builder`` grows the trees:

    * ``"shared"`` (default): all trees grown together by `nasx.surrogate._forest.grow_forest`,
      which searches each distinct row set once for all the trees that reach it and walks all
      trees at once when predicting (a paper-setting adaptive-switching iteration runs
      ~4x faster on 46 genes, ~12-16x on NAS-Bench-201's 6; ``benchmarks/surrogate_cost.py``).
      Each tree is the tree sklearn grows on its subset except where several splits are
      equally good: sklearn's choice among them follows its float rounding and, for
      bit-equal ones, its row shuffle and seed; here the rounding is sklearn's where it does
      not depend on the shuffle and the rest is drawn at random (see that module). A gene
      with more than ``MAX_VALUES`` distinct values (not an integer encoding) falls back to
      ``"sklearn"``.
    * ``"sklearn"``: the reference loop, one `DecisionTreeRegressor` per tree (NSGANetV2's
      code), parallel over ``n_jobs`` joblib threads.

    Args:
        n_tree: number of trees.
        n_jobs: joblib threads growing the trees (1: serial, -1: all cores); the model does
            not depend on it.
        builder: ``"shared"`` or ``"sklearn"`` (above).
        seed: seeds the row shuffles, the feature subsets and each tree's tie-breaking.
    """

    name = "carts"

    def __init__(
        self, n_tree: int = 5000, n_jobs: int = 1, builder: str = "shared", seed: int = 0
    ) -> None:
        super().__init__(seed)
        if n_tree < 1:
            raise ValueError(f"carts n_tree must be >= 1, got {n_tree}")
        if builder not in BUILDERS:
            raise ValueError(f"carts builder must be one of {BUILDERS}, got {builder!r}")
        self.n_tree = int(n_tree)
        self.n_jobs = int(n_jobs)
        self.builder = builder
        self.trees: list[tuple[np.ndarray, DecisionTreeRegressor]] = []
        self.forest: Forest | None = None
        self.subsets = np.zeros((0, 0), dtype=bool)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        n, d = X.shape
        draws = []
        for _ in range(self.n_tree):
            rows = self.rng.permutation(n)
            size = int(self.rng.integers(1, d + 1))
            features = np.sort(self.rng.permutation(d)[:size])
            draws.append((rows, features, int(self.rng.integers(2**31 - 1))))
        self.subsets = np.zeros((self.n_tree, d), dtype=bool)
        for i, (_, features, _) in enumerate(draws):
            self.subsets[i, features] = True
        self.trees, self.forest = [], None
        few_values = max(len(np.unique(X[:, j])) for j in range(d)) <= MAX_VALUES
        if self.builder == "shared" and few_values:
            # ties are drawn after the per-tree draws, so those stay the reference's
            ties = int(self.rng.integers(2**63 - 1))
            self.forest = grow_forest(X, y, self.subsets, ties, self.n_jobs)
            return
        trees = Parallel(n_jobs=self.n_jobs, prefer="threads")(  # tree fits release the GIL
            delayed(_fit_tree)(X, y, rows, features, seed) for rows, features, seed in draws
        )
        self.trees = [(f, t) for (_, f, _), t in zip(draws, trees, strict=True)]

    def predict_trees(self, X: np.ndarray) -> np.ndarray:
        """Per-tree predictions, shape ``(n_tree, m)``; `predict` is their mean."""
        if not self.is_fitted:
            raise RuntimeError("CartsSurrogate.predict_trees called before fit: call fit first")
        if self.forest is not None:
            return self.forest.predict_trees(np.asarray(X, dtype=float))
        # sklearn trees compute in float32; converting once lets each tree skip its checks
        X32 = np.asarray(X, dtype=np.float32)
        return np.stack([tree.predict(X32[:, f], check_input=False) for f, tree in self.trees])

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict_trees(X).mean(axis=0))
