"""Adaptive switching: pick the surrogate with the best cross-validated ranking (``as``)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nasx.surrogate.base import Surrogate, fit_quality


class AdaptiveSwitching(Surrogate):
    """NSGANetV2's ``AdaptiveSwitching``: k-fold cross-validation over a pool of surrogates.

    `fit` permutes the rows with the seed and splits them into ``n_folds`` folds with
    `numpy.array_split`. For each fold and each pool member, a fresh member is fitted on the
    other folds and scored by Kendall tau on the held-out fold (`fit_quality`; an undefined tau
    counts as 0). The winner maximises ``mean(tau) - std(tau)`` over folds (ties: the first in
    ``pool`` order) and is refitted on all rows; it makes every prediction.

    The pool is NSGANetV2's ``["rbf", "gp", "carts"]`` by default (its ``mlp`` entry is
    commented out). CNAS at HEAD uses ``["rbf", "carts", "mlp"]`` and the CNAS README era
    ``["rbf", "gp", "carts", "mlp"]``.

    Cost: ``n_folds + 1`` fits of the winner and ``n_folds`` of every other member per `fit`.

    Args:
        pool: names of the candidate surrogates (keys of `nasx.surrogate.SURROGATES`).
        n_folds: cross-validation folds; with fewer rows than folds, one fold per row
            (leave-one-out; a held-out single row scores tau 0, so ties go to pool order).
        members: constructor arguments per pool member, e.g. ``{"carts": {"n_tree": 500}}``
            (the seed is set here: do not pass one).
        seed: seeds the permutation and, through derived seeds, every member.
    """

    name = "as"

    def __init__(
        self,
        pool: Sequence[str] = ("rbf", "gp", "carts"),
        n_folds: int = 10,
        members: Mapping[str, Mapping[str, Any]] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        from nasx.surrogate import SURROGATES

        self.pool = [str(p) for p in pool]
        members = {str(k): dict(v) for k, v in (members or {}).items()}
        unknown = sorted({*self.pool, *members} - (SURROGATES.keys() - {self.name}))
        if unknown or not self.pool:
            raise ValueError(
                f"as: pool {self.pool} / members {sorted(members)} name unknown surrogates "
                f"{unknown}: use a non-empty pool of {sorted(SURROGATES.keys() - {self.name})}"
            )
        if len(set(self.pool)) != len(self.pool):
            raise ValueError(f"as: pool {self.pool} lists a surrogate twice")
        if any("seed" in kw for kw in members.values()):
            raise ValueError("as: members must not set seed (it is derived from as.seed)")
        if n_folds < 2:
            raise ValueError(f"as n_folds must be >= 2, got {n_folds}")
        self.n_folds = int(n_folds)
        self.members = members
        self.cv_scores: dict[str, tuple[float, float]] = {}
        self.cv_taus = np.zeros((0, len(self.pool)))
        self.model: Surrogate | None = None

    @property
    def winner(self) -> str:
        """The name of the pool member chosen by the last `fit`."""
        if self.model is None:
            raise RuntimeError("AdaptiveSwitching.winner read before fit: call fit first")
        return self.model.name

    def _member_seeds(self) -> dict[str, int]:
        """One seed per member, from ``seed`` and the member's name (not its pool position)."""
        return {
            name: int(
                np.random.SeedSequence([self.seed, zlib.crc32(name.encode())]).generate_state(1)[0]
            )
            for name in self.pool
        }

    def _make(self, name: str, seed: int) -> Surrogate:
        from nasx.surrogate import make_surrogate

        return make_surrogate(name, seed=seed, **self.members.get(name, {}))

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        n = len(y)
        if n < 3:
            raise ValueError(f"as: cross-validation needs at least 3 samples, got {n}")
        n_folds = min(self.n_folds, n)
        seeds = self._member_seeds()
        perm = self.rng.permutation(n)
        taus = np.zeros((n_folds, len(self.pool)))
        for i, test in enumerate(np.array_split(perm, n_folds)):
            train = np.setdiff1d(perm, test, assume_unique=True)
            for j, name in enumerate(self.pool):
                model = self._make(name, seeds[name])
                model.fit(X[train], y[train])
                taus[i, j] = fit_quality(model.predict(X[test]), y[test])["tau"]
        mean, std = taus.mean(axis=0), taus.std(axis=0)
        self.cv_taus = taus
        self.cv_scores = {
            name: (float(m), float(s)) for name, m, s in zip(self.pool, mean, std, strict=True)
        }
        best = self.pool[int(np.argmax(mean - std))]
        self.model = self._make(best, seeds[best])
        self.model.fit(X, y)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        assert self.model is not None
        return self.model.predict(X)
