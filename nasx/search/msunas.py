"""The MSuNAS loop of NSGANetV2/CNAS: surrogate-assisted NSGA-II with subset selection.

`MSuNASSearch` is ``search=msunas surrogate=<name>``: a design of experiments first, then
per iteration a surrogate fitted on the archive's first objective, NSGA-II (pymoo) on
(predicted first objective, exact costs) seeded with the archive's non-dominated set, and
``n_candidates`` of its final population chosen to spread evenly along the second
objective (`nasx.search.subset`). It proposes; the search loop evaluates.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.soo.nonconvex.ga import GA
from pymoo.core.problem import Problem
from pymoo.operators.crossover.pntx import TwoPointCrossover
from pymoo.optimize import minimize

from nasx.hypervolume import non_dominated
from nasx.search.base import CostFn, PopulationFn, SearchStrategy
from nasx.search.operators import IntegerPolynomialMutation
from nasx.search.subset import select_subset
from nasx.search_space.base import Architecture, SearchSpace
from nasx.surrogate.base import Surrogate, fit_quality

#: objective rows at or above this are failed evaluations (`nasx.evaluator.FAILED_VALUE`)
FAILED = 1e10
#: how an iteration picks its candidates (`MSuNAS` ``explore``)
EXPLORE = ("none", "local")


class _Predict(Protocol):
    def __call__(self, X: np.ndarray) -> np.ndarray: ...


class _AuxiliaryProblem(Problem):
    """NSGANetV2's ``AuxiliarySingleLevelProblem``: predicted first objective, exact costs.

    Costs the metric measures (``avg_macs``) are predicted by ``predict_measured`` (CNAS's
    ``sec_predictor``), and ``population`` turns the population's cost columns into what is
    minimised (NACHOS's feasibility-weighted MAC bound, CNAS ``cnas.py:642-670``).
    """

    def __init__(
        self,
        space: SearchSpace,
        predict: _Predict,
        costs: CostFn,
        n_obj: int,
        predict_measured: _Predict | None = None,
        population: PopulationFn | None = None,
    ) -> None:
        probe = costs(space.decode(space.lower))[1]
        super().__init__(
            n_var=space.n_var,
            n_obj=n_obj,
            n_ieq_constr=len(probe),
            xl=space.lower,
            xu=space.upper,
            vtype=int,
        )
        self.space, self.predict, self.costs = space, predict, costs
        self.predict_measured, self.population = predict_measured, population

    def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        archs = [self.space.decode(x) for x in X]
        enc = np.array([a.encode() for a in archs], dtype=float)
        if self.predict_measured is None:
            rows = [self.costs(a) for a in archs]
        else:
            measured = self.predict_measured(enc)
            rows = [self.costs(a, m) for a, m in zip(archs, measured, strict=True)]
        C = np.array([r[0] for r in rows], dtype=float).reshape(len(archs), -1)
        if self.population is not None:
            C = self.population(C)
        F = np.column_stack([self.predict(enc), *C.T])
        out["F"] = F[:, : self.n_obj]
        if self.n_ieq_constr:
            out["G"] = np.array([r[1] for r in rows], dtype=float)


class MSuNASSearch(SearchStrategy):
    """NSGANetV2's surrogate-assisted search (see the module docstring).

    Defaults are NSGANetV2's (``msunas.py``): DOE 100 with the smallest and largest
    architectures, 8 candidates per iteration, NSGA-II with population 40 for 20 generations
    (two-point crossover 0.9, NSGANetV2's integer polynomial mutation eta 1, duplicates
    removed), and subset selection by a GA with population 100 for 60 generations.

    Integer genes use NSGANetV2's integer-aware mutation (`IntegerPolynomialMutation`: bounds
    widened by 0.5, then rounded), as NSGANetV2 did with pymoo 0.4; CNAS on pymoo 0.6 lets
    float genes through and truncates them, which nasx does not reproduce.

    With one objective (CNAS without ``sec_obj``) the surrogate is searched by CNAS's GA
    (cnas.py at the README commit: population 40 seeded with the archive's best, two-point
    crossover, the same mutation, ``so_generations`` = 60) and the ``n_candidates`` best
    predicted new architectures are evaluated (``explore="none"``, the reference behaviour).
    Such a GA collapses onto the surrogate's optimum, and each iteration spends its
    evaluations on near-copies of one guess, often in one basin. ``explore="local"`` (nasx's
    improvement, `_local`) is a surrogate-screened local search over several basins: the
    archive's best architecture proposes half of the candidates, its best predicted new
    one-gene neighbours; the best architecture at least ``parent_distance`` genes away from
    it half of the rest, and so on; a parent whose neighbourhood is all evaluated hands over
    to the next-best one.

    Near the top of the archive the neighbours differ by tenths of a percent, and a surrogate
    fitted on every evaluation spends itself on the bad cells (a NAS-Bench-201 cell with a
    ``none`` edge at 10 %) and orders the best parent's neighbours poorly. ``local_fit=k``
    fits the surrogate that ranks the neighbours on the ``k`` best evaluations only (a local
    model, as trust-region Bayesian optimisation uses); with one objective that is the
    iteration's only fit, and its report covers those ``k`` rows.

    With several objectives ``explore="local"`` splits each iteration: half of the candidates
    (rounded down) come from the same local search on the predicted first objective (parents:
    the archive's most accurate architectures), the rest from NSGANetV2's subset selection of
    the NSGA-II population. The reference's spread along the second objective leaves the most
    accurate, slowest end of the front thin, since NSGA-II on the surrogate rarely finds the
    best architectures there; the local half reaches them, and the exact costs (latency) place
    them on the front.

    Args:
        n_evals: budget (distinct architectures), the DOE included.
        surrogate: the accuracy predictor, refitted every iteration; set by the pipeline from
            the ``surrogate`` group.
        sec_surrogate: the predictor of costs the metric measures (CNAS's ``sec_predictor``
            for ``avg_macs``), refitted every iteration on their archive values; set by the
            pipeline (``search.sec_surrogate``, default: the ``surrogate`` group) when such a
            cost is searched. One copy per measured cost.
        n_doe: size of the initial design.
        n_candidates: architectures proposed per iteration (``n_iter`` in NSGANetV2).
        surrogate_pop_size: NSGA-II population on the surrogate.
        surrogate_generations: NSGA-II generations on the surrogate.
        crossover_prob: two-point crossover probability.
        surrogate_mutation_eta: polynomial-mutation distribution index.
        subset_pop_size: population of the subset-selection GA.
        subset_generations: generations of the subset-selection GA.
        doe_extremes: start the DOE with the smallest and largest architectures (NSGANetV2);
            ``False`` makes it purely random (CNAS ``search_space.sample(n_doe)``).
        so_generations: GA generations on the surrogate with a single objective (CNAS: 60).
        explore: ``none`` (the reference) or ``local`` (see above): with one objective all
            candidates, with several half of them, from the local search.
        min_distance: genes in which one parent's ``explore="local"`` candidates differ
            pairwise.
        parent_distance: genes in which ``explore="local"`` parents differ pairwise.
        local_fit: ``explore="local"`` ranks neighbours with a surrogate fitted on this many
            best evaluations (``None``: all of them); with several objectives a copy of
            ``surrogate`` is fitted for it, and NSGA-II's surrogate keeps the whole archive.
        seed: own seed (``None``: the run seed).
    """

    def __init__(
        self,
        n_evals: int = 100,
        surrogate: Surrogate | None = None,
        n_doe: int = 100,
        n_candidates: int = 8,
        surrogate_pop_size: int = 40,
        surrogate_generations: int = 20,
        crossover_prob: float = 0.9,
        surrogate_mutation_eta: float = 1.0,
        subset_pop_size: int = 100,
        subset_generations: int = 60,
        doe_extremes: bool = True,
        so_generations: int = 60,
        explore: str = "none",
        min_distance: int = 2,
        parent_distance: int = 3,
        local_fit: int | None = None,
        seed: int | None = None,
        sec_surrogate: Surrogate | None = None,
    ) -> None:
        super().__init__(n_evals, seed)
        if surrogate is None:
            raise ValueError(
                "search=msunas needs an accuracy predictor: pass surrogate=<rbf|gp|mlp|carts|as>"
            )
        pop_size, generations = surrogate_pop_size, surrogate_generations
        mutation_eta = surrogate_mutation_eta
        if explore not in EXPLORE:
            raise ValueError(f"search.explore={explore!r}: use one of {', '.join(EXPLORE)}")
        if local_fit is not None and local_fit < 3:
            raise ValueError(
                f"search.local_fit must be >= 3 (rows to fit the ranking surrogate on) or "
                f"null (all), got {local_fit}"
            )
        for name, v in (
            ("so_generations", so_generations),
            ("min_distance", min_distance),
            ("parent_distance", parent_distance),
            ("n_doe", n_doe),
            ("n_candidates", n_candidates),
            ("surrogate_pop_size", pop_size),
            ("surrogate_generations", generations),
            ("subset_pop_size", subset_pop_size),
            ("subset_generations", subset_generations),
        ):
            if v < 1:
                raise ValueError(f"search.{name} must be >= 1, got {v}")
        if doe_extremes and n_doe < 2:
            raise ValueError(f"search.n_doe must be >= 2 (smallest and largest), got {n_doe}")
        self.surrogate, self.n_doe, self.n_candidates = surrogate, n_doe, n_candidates
        self.pop_size, self.generations = pop_size, generations
        self.crossover_prob, self.mutation_eta = crossover_prob, mutation_eta
        self.subset_pop_size, self.subset_generations = subset_pop_size, subset_generations
        self.doe_extremes, self.so_generations = doe_extremes, so_generations
        self.explore, self.min_distance = explore, min_distance
        self.parent_distance, self.local_fit = parent_distance, local_fit
        #: the surrogate that ranks `_local`'s neighbours (the main one unless a copy is needed)
        self._ranker = surrogate
        #: genes the main surrogate was last fitted on (its fit report covers these)
        self._fitted_on: set[tuple[int, ...]] = set()
        self.archive: dict[tuple[int, ...], np.ndarray] = {}
        self.violation: dict[tuple[int, ...], float] = {}
        self.predicted: dict[tuple[int, ...], float] = {}
        self.fit_report: dict[str, Any] | None = None
        self.sec_surrogate = sec_surrogate
        self._sec: list[Surrogate] = []
        self.sec_predicted: dict[tuple[int, ...], np.ndarray] = {}
        self.sec_report: list[dict[str, Any]] | None = None

    def _setup(self, seed: int) -> None:
        n_measured = sum(self.measured)
        if n_measured and self.sec_surrogate is None:
            raise ValueError(
                "search=msunas: a searched cost is measured by the metric (avg_macs), so it "
                "needs a second surrogate: set search.sec_surrogate or surrogate=<name>"
            )
        local = self.explore == "local" and self.local_fit is not None
        self._ranker = copy.deepcopy(self.surrogate) if local and self.n_obj > 1 else self.surrogate
        if n_measured:
            assert self.sec_surrogate is not None
            self._sec = [copy.deepcopy(self.sec_surrogate) for _ in range(n_measured)]
        if self.costs is None:
            n = self.n_constr

            def no_costs(_: Architecture) -> tuple[np.ndarray, np.ndarray]:
                return np.zeros(0), np.zeros(n)

            self.costs = no_costs

    @property
    def exact_costs(self) -> CostFn:
        """The exact cost rows (set up: `setup` binds them or a zero-column stand-in)."""
        assert self.costs is not None, "setup() first"
        return self.costs

    def info(self) -> dict[str, Any]:
        """``{"surrogate": {name, winner, rmse, rho, tau}}`` after each iteration.

        With measured costs also ``sec_surrogate``: one such entry per measured cost.
        """
        out: dict[str, Any] = {} if self.fit_report is None else {"surrogate": self.fit_report}
        if self.sec_report is not None:
            out["sec_surrogate"] = self.sec_report
        return out

    @property
    def _measured_columns(self) -> list[int]:
        """Columns of ``F`` holding measured costs (1 + their cost index)."""
        return [1 + j for j, m in enumerate(self.measured) if m]

    def _fit_measured(self, genes: list[tuple[int, ...]], X: np.ndarray) -> None:
        """Fit one second surrogate per measured cost on the archive's values."""
        for col, model in zip(self._measured_columns, self._sec, strict=True):
            model.fit(X, np.array([self.archive[g][col] for g in genes], dtype=float))

    def _predict_measured(self, X: np.ndarray) -> np.ndarray:
        """``(n, n_measured)`` predicted measured costs of encodings ``X``."""
        return np.column_stack([m.predict(X) for m in self._sec]).reshape(len(X), len(self._sec))

    # --- proposals ---------------------------------------------------------------------
    def _ask(self) -> list[Architecture]:
        """The DOE first, then ``n_candidates`` surrogate-chosen new architectures."""
        if not self.archive:
            return self._doe()
        genes, X, y = self._training_set()
        if len(y) < 3:  # too few successful evaluations to fit any surrogate: explore
            return self._random(self.n_candidates)
        top = self._top_rows(y)
        if self.n_obj == 1 and self.explore == "local":  # the ranker is the only surrogate
            self.surrogate.fit(X[top], y[top])
            self._fitted_on = {genes[int(i)] for i in top}
        else:
            self.surrogate.fit(X, y)
            self._fitted_on = set(genes)
            if self._ranker is not self.surrogate:
                self._ranker.fit(X[top], y[top])
        if self._sec:
            self._fit_measured(genes, X)
        if self.n_obj == 1 and self.explore == "local":
            chosen = self._local(self.n_candidates)
        else:
            local = self._local(self.n_candidates // 2) if self.explore == "local" else []
            taken = {a.genes for a in local}
            pool = [(a, f) for a, f in self._search_surrogate() if a.genes not in taken]
            chosen = local + self._subset(pool, self.n_candidates - len(local))
        if len(chosen) < self.n_candidates:  # the surrogate's front is exhausted: explore
            chosen += self._random(self.n_candidates - len(chosen), exclude=chosen)
        enc = np.array([a.encode() for a in chosen], dtype=float)
        self.predicted = dict(
            zip([a.genes for a in chosen], self.surrogate.predict(enc).tolist(), strict=True)
        )
        if self._sec and chosen:
            self.sec_predicted = dict(
                zip([a.genes for a in chosen], self._predict_measured(enc), strict=True)
            )
        return chosen

    def _tell(self, archs: list[Architecture], F: np.ndarray) -> None:
        """Add the evaluated rows (and their constraint rows); report the surrogate's fit."""
        for a, f, g in zip(archs, F, self._G, strict=True):
            self.archive[a.genes] = np.asarray(f, dtype=float)
            self.violation[a.genes] = float(np.clip(g, 0, None).sum()) if len(g) else 0.0
        if not self.predicted:
            self.fit_report = None
            return
        # NSGANetV2 (utils.py get_correlation): in-sample predictions for the archive the
        # surrogate was fitted on, plus its predictions for the new candidates
        genes, X, y = self._training_set()
        # with `local_fit` and one objective the surrogate saw only the best rows: those
        rows = [i for i, g in enumerate(genes) if g in self._fitted_on or g in self.predicted]
        pred = self.surrogate.predict(X[rows])
        for i, key in enumerate(genes[i] for i in rows):
            if key in self.predicted:
                pred[i] = self.predicted[key]
        self.fit_report = {
            "name": self.surrogate.name,
            "winner": self.surrogate.winner,
            **fit_quality(pred, y[rows]),
        }
        self.predicted = {}
        if self._sec:
            # the same report for each measured cost: in-sample plus the candidates' predictions
            sec_pred = self._predict_measured(X)
            for i, key in enumerate(genes):
                if key in self.sec_predicted:
                    sec_pred[i] = self.sec_predicted[key]
            self.sec_report = [
                {
                    "name": m.name,
                    "winner": m.winner,
                    **fit_quality(
                        sec_pred[:, k], np.array([self.archive[g][col] for g in genes], dtype=float)
                    ),
                }
                for k, (col, m) in enumerate(zip(self._measured_columns, self._sec, strict=True))
            ]
            self.sec_predicted = {}

    def _rescore(self, F: dict[tuple[int, ...], np.ndarray]) -> None:
        """Replace archive rows (archive-dependent metrics); the next fit uses them."""
        for g, row in F.items():
            if g in self.archive:
                self.archive[g] = np.asarray(row, dtype=float)

    # --- steps -------------------------------------------------------------------------
    def _doe(self) -> list[Architecture]:
        out = self._extremes() if self.doe_extremes else []
        out += self._random(self.n_doe - len(out), exclude=out)
        return out

    def _extremes(self) -> list[Architecture]:
        """The smallest and largest architecture by the first cost (by genes without costs)."""
        extremes = getattr(self.space, "extremes", None)
        cands = list(extremes()) if callable(extremes) else []
        cands += [self.space.decode(self.space.lower), self.space.decode(self.space.upper)]
        cands = list({a.genes: a for a in cands}.values())
        if self.n_obj > 1 and not (self.measured and self.measured[0]):
            size = [float(self.exact_costs(a)[0][0]) for a in cands]
            lo, hi = cands[int(np.argmin(size))], cands[int(np.argmax(size))]
        else:
            lo, hi = cands[0], cands[-1]
        return [lo] if lo.genes == hi.genes else [lo, hi]

    def _random(self, n: int, exclude: list[Architecture] | None = None) -> list[Architecture]:
        seen = set(self.archive) | {a.genes for a in exclude or []}
        out: list[Architecture] = []
        for _ in range(100 * max(n, 1)):
            if len(out) >= n:
                break
            a = self.space.sample(self.rng)
            if a.genes not in seen:
                seen.add(a.genes)
                out.append(a)
        return out

    def _training_set(self) -> tuple[list[tuple[int, ...]], np.ndarray, np.ndarray]:
        """Genes, encodings and first objective of every evaluation that did not fail."""
        rows = [(g, f) for g, f in self.archive.items() if f[0] < FAILED]
        X = np.array([g for g, _ in rows], dtype=float).reshape(len(rows), self.space.n_var)
        return [g for g, _ in rows], X, np.array([f[0] for _, f in rows], dtype=float)

    def _top_rows(self, y: np.ndarray) -> np.ndarray:
        """Indices of the ``local_fit`` best ``y`` (all of them without ``local_fit``)."""
        order = np.argsort(y, kind="stable")
        return order if self.local_fit is None else order[: self.local_fit]

    def _front(self) -> list[tuple[int, ...]]:
        """The archive's non-dominated genes (among the feasible ones, if any; not failed)."""
        rows = [(g, f) for g, f in self.archive.items() if f.max() < FAILED]
        feasible = [(g, f) for g, f in rows if self.violation.get(g, 0.0) <= 0]
        rows = feasible or rows
        if not rows:
            return []
        F = np.array([f for _, f in rows])
        return [rows[int(i)][0] for i in non_dominated(F)]

    def _seed(self) -> int:
        return int(self.rng.integers(0, 2**31 - 1))

    def _search_surrogate(self) -> list[tuple[Architecture, np.ndarray]]:
        """NSGA-II (or a GA for one objective) on the surrogate; returns new (arch, F) pairs."""
        problem = self._problem()
        front = self._front()
        if self.n_obj == 1:
            best = sorted(self.archive, key=lambda g: self.archive[g][0])[: self.n_candidates]
            front = best
        init = np.array(front, dtype=float) if front else None
        common: dict[str, Any] = dict(
            pop_size=self.pop_size,
            crossover=TwoPointCrossover(prob=self.crossover_prob),
            mutation=IntegerPolynomialMutation(eta=self.mutation_eta),
            eliminate_duplicates=True,
        )
        if init is not None:
            common["sampling"] = init
        algorithm = NSGA2(**common) if self.n_obj > 1 else GA(**common)
        generations = self.generations if self.n_obj > 1 else self.so_generations
        res = minimize(problem, algorithm, ("n_gen", generations), seed=self._seed(), verbose=False)
        pool: dict[tuple[int, ...], tuple[Architecture, np.ndarray]] = {}
        for x, f in zip(res.pop.get("X"), res.pop.get("F"), strict=True):
            a = self.space.decode(x)
            if a.genes not in self.archive and a.genes not in pool:
                pool[a.genes] = (a, np.asarray(f, dtype=float))
        return list(pool.values())

    def _problem(self, surrogate: Surrogate | None = None) -> _AuxiliaryProblem:
        """(Predicted first objective, exact costs) on ``surrogate`` (default: the main one)."""
        model = self.surrogate if surrogate is None else surrogate

        def predict(X: np.ndarray) -> np.ndarray:
            return model.predict(X)

        return _AuxiliaryProblem(
            self.space,
            predict,
            self.exact_costs,
            self.n_obj,
            self._predict_measured if self._sec else None,
            self.population_fn,
        )

    def _new_neighbours(
        self, parent: tuple[int, ...], problem: _AuxiliaryProblem
    ) -> list[tuple[Architecture, np.ndarray]]:
        """``parent``'s one-gene neighbours not yet evaluated, with their rows on ``problem``."""
        pool: dict[tuple[int, ...], Architecture] = {}
        x = np.asarray(parent, dtype=int)
        for i in range(self.space.n_var):
            for v in range(int(self.space.lower[i]), int(self.space.upper[i]) + 1):
                if v != x[i]:
                    y = x.copy()
                    y[i] = v
                    a = self.space.decode(y)
                    if a.genes not in self.archive:
                        pool.setdefault(a.genes, a)
        if not pool:
            return []
        enc = np.array([a.encode() for a in pool.values()], dtype=float)
        out: dict[str, Any] = {}
        problem._evaluate(enc, out)
        return list(zip(pool.values(), np.asarray(out["F"], dtype=float), strict=True))

    def _local(self, k: int) -> list[Architecture]:
        """``explore="local"``: ``k`` best predicted new one-gene neighbours of several parents.

        Parents are taken in the archive's order (best first objective first), skipping any
        within ``parent_distance`` genes of a parent already taken (its basin is explored) and
        any whose neighbours are all evaluated. Each parent gets half of the candidates still
        to choose (k = 8: 4, 2, 1, 1; k = 4: 2, 1, 1), its new neighbours in order of
        prediction (by the `local_fit` ranker), pairwise ``min_distance`` apart (`diverse_top`).
        """
        problem = self._problem(self._ranker)
        chosen: list[Architecture] = []
        taken: set[tuple[int, ...]] = set()
        parents: list[np.ndarray] = []
        for parent in sorted(self.archive, key=lambda g: self.archive[g][0]):
            if self.archive[parent][0] >= FAILED or len(chosen) >= k:
                break
            x = np.asarray(parent)
            if any(int((x != q).sum()) < self.parent_distance for q in parents):
                continue  # the same basin as a better parent: that one explores it
            pool = [
                (a, f) for a, f in self._new_neighbours(parent, problem) if a.genes not in taken
            ]
            if not pool:
                continue  # its neighbourhood is evaluated: the next-best parent takes over
            parents.append(x)
            order = np.argsort([f[0] for _, f in pool], kind="stable")
            ranked = [pool[int(i)][0] for i in order]
            room = (k - len(chosen) + 1) // 2  # half of what is left (1 of 1)
            picked = diverse_top(ranked, room, self.min_distance)
            chosen += picked
            taken |= {a.genes for a in picked}
        return chosen

    def _subset(self, pool: list[tuple[Architecture, np.ndarray]], k: int) -> list[Architecture]:
        """K of ``pool``: the best predicted for one objective, else NSGANetV2's spread."""
        if len(pool) <= k:
            return [a for a, _ in pool]
        if self.n_obj == 1:
            order = np.argsort([f[0] for _, f in pool], kind="stable")
            return [pool[int(i)][0] for i in order[:k]]
        front_f2 = np.array([self.archive[g][1] for g in self._front()])
        cand_f2 = np.array([f[1] for _, f in pool])
        mask = select_subset(
            front_f2, cand_f2, k, self.subset_pop_size, self.subset_generations, self._seed()
        )
        return [pool[int(i)][0] for i in np.flatnonzero(mask)]


def diverse_top(ranked: list[Architecture], k: int, min_distance: int) -> list[Architecture]:
    """The first ``k`` of ``ranked`` that differ pairwise in at least ``min_distance`` genes.

    Where too few are that far apart, the best remaining ones fill up to ``k``.
    """
    chosen: list[Architecture] = []
    for a in ranked:
        if len(chosen) == k:
            return chosen
        x = np.asarray(a.genes)
        if all(int((x != np.asarray(b.genes)).sum()) >= min_distance for b in chosen):
            chosen.append(a)
    taken = {a.genes for a in chosen}
    chosen += [a for a in ranked if a.genes not in taken][: k - len(chosen)]
    return chosen


# --- subset selection (NSGANetV2 msunas.py SubsetProblem + utils.py operators) -------------
# pymoo has no fixed-cardinality binary operators; these three are NSGANetV2's.
