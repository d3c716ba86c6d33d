"""NSGANetV2's subset selection: choose k candidates that spread along the second objective.

pymoo has no k-subset operators, so the GA's sampling, crossover and mutation over index
subsets are written here (NSGANetV2 ``msunas.py`` SubsetProblem and its operators).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from pymoo.algorithms.soo.nonconvex.ga import GA
from pymoo.core.crossover import Crossover
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling
from pymoo.optimize import minimize

#: subset selection scores every subset when there are at most this many
EXHAUSTIVE_SUBSETS = 5000


class _SubsetProblem(Problem):
    """Choose ``k`` candidates minimising the std of the gaps along the second objective."""

    def __init__(self, front: np.ndarray, cands: np.ndarray, k: int) -> None:
        super().__init__(n_var=len(cands), n_obj=1, n_ieq_constr=1, xl=0, xu=1, vtype=bool)
        self.front, self.cands, self.k = front, cands, k

    def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        F = np.full((len(X), 1), np.nan)
        G = np.full((len(X), 1), np.nan)
        for i, x in enumerate(X):
            values = np.sort(np.concatenate([self.front, self.cands[x.astype(bool)]]))
            F[i, 0] = np.std(np.diff(values)) if len(values) > 1 else 0.0
            G[i, 0] = (self.k - int(x.sum())) ** 2
        out["F"], out["G"] = F, G


class _KSubsetSampling(Sampling):
    def _do(self, problem: Any, n_samples: int, **kwargs: Any) -> np.ndarray:
        rng = kwargs["random_state"]
        X = np.zeros((n_samples, problem.n_var), dtype=bool)
        for row in X:
            row[rng.choice(problem.n_var, problem.k, replace=False)] = True
        return X


class _KSubsetCrossover(Crossover):
    """Keep the bits both parents share, fill up to k from the parents' difference."""

    def __init__(self) -> None:
        super().__init__(n_parents=2, n_offsprings=1)

    def _do(self, problem: Any, X: np.ndarray, **kwargs: Any) -> np.ndarray:
        rng = kwargs["random_state"]
        _, n_matings, n_var = X.shape
        out = np.zeros((1, n_matings, n_var), dtype=bool)
        for m in range(n_matings):
            a, b = X[0, m].astype(bool), X[1, m].astype(bool)
            child = a & b
            rest = np.flatnonzero(a ^ b)
            need = problem.k - int(child.sum())
            if need > 0 and len(rest):
                child[rng.choice(rest, min(need, len(rest)), replace=False)] = True
            out[0, m] = child
        return out


class _SwapMutation(Mutation):
    """Swap one selected bit with one unselected bit."""

    def _do(self, problem: Any, X: np.ndarray, **kwargs: Any) -> np.ndarray:
        rng = kwargs["random_state"]
        X = X.astype(bool).copy()
        for row in X:
            on, off = np.flatnonzero(row), np.flatnonzero(~row)
            if len(on) and len(off):
                row[rng.choice(on)] = False
                row[rng.choice(off)] = True
        return X


def select_subset(
    front: np.ndarray,
    cands: np.ndarray,
    k: int,
    pop_size: int = 100,
    generations: int = 60,
    seed: int = 0,
) -> np.ndarray:
    """Boolean mask choosing ``k`` of ``cands`` (second-objective values).

    Chosen so that, added to ``front``, the values are spaced most evenly (the std of the
    gaps is minimal): NSGANetV2's subset selection, solved by a pymoo GA.
    """
    if k >= len(cands):
        return np.ones(len(cands), dtype=bool)
    problem = _SubsetProblem(np.asarray(front, float), np.asarray(cands, float), k)
    if math.comb(len(cands), k) <= EXHAUSTIVE_SUBSETS:
        # few subsets: score them all (exact; a GA with duplicate elimination cannot even
        # fill its population here)
        masks = np.zeros((math.comb(len(cands), k), len(cands)), dtype=bool)
        for row, idx in zip(masks, itertools.combinations(range(len(cands)), k), strict=True):
            row[list(idx)] = True
        out: dict[str, Any] = {}
        problem._evaluate(masks, out)
        return masks[int(np.argmin(out["F"][:, 0]))]
    algorithm = GA(
        pop_size=pop_size,
        sampling=_KSubsetSampling(),
        crossover=_KSubsetCrossover(),
        mutation=_SwapMutation(),
        eliminate_duplicates=True,
    )
    res = minimize(problem, algorithm, ("n_gen", generations), seed=seed, verbose=False)
    X = res.X if res.X is not None else res.pop.get("X")[0]
    mask = np.asarray(X, dtype=bool).reshape(-1)
    if int(mask.sum()) != k:  # infeasible best: fall back to the first k
        mask = np.zeros(len(cands), dtype=bool)
        mask[:k] = True
    return mask
