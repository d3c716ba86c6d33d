"""NSGA-II (pymoo) on the integer encoding, plain or surrogate-assisted (MSuNAS)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.problems.static import StaticProblem

from nasx.search.base import SearchStrategy
from nasx.search.msunas import MSuNAS
from nasx.search_space.base import Architecture
from nasx.surrogate.base import Surrogate


class NSGASearch(SearchStrategy):
    """pymoo NSGA-II over the space's integer genes; objectives come from the pipeline.

    Without a surrogate, every offspring is evaluated: integer variables use pymoo's integer
    recipe (random integer sampling, SBX and polynomial mutation followed by rounding,
    duplicate elimination) and bounded costs enter as pymoo inequality constraints.

    With a surrogate (``surrogate=<name>``), the search is NSGANetV2's MSuNAS loop
    (`nasx.search.msunas.MSuNAS`): ``n_doe`` initial evaluations, then ``n_candidates`` per
    iteration chosen by NSGA-II on the surrogate's predictions; the ``surrogate_*`` and
    ``subset_*`` arguments configure it.

    Args:
        n_evals: budget (distinct architectures).
        pop_size: population size (plain NSGA-II).
        n_offsprings: offspring per generation (``None``: ``pop_size``).
        crossover_prob: SBX probability (plain) / two-point crossover probability (MSuNAS).
        crossover_eta: SBX distribution index.
        mutation_eta: polynomial-mutation distribution index (plain).
        seed: own seed for pymoo (``None``: the run seed).
        surrogate: accuracy predictor; set by the pipeline from the ``surrogate`` group.
        n_doe: MSuNAS initial design size (smallest and largest included).
        n_candidates: MSuNAS real evaluations per iteration.
        surrogate_pop_size: MSuNAS NSGA-II population on the surrogate.
        surrogate_generations: MSuNAS NSGA-II generations on the surrogate.
        surrogate_mutation_eta: MSuNAS polynomial-mutation index (NSGANetV2: 1.0).
        subset_pop_size: MSuNAS subset-selection GA population.
        subset_generations: MSuNAS subset-selection GA generations.
        doe_extremes: MSuNAS DOE with the smallest and largest (NSGANetV2) or purely random
            (CNAS).
        so_generations: MSuNAS GA generations on the surrogate with one objective (CNAS: 60).
        explore: MSuNAS single-objective candidate choice, ``none`` (reference) or ``local``.
        min_distance: genes in which one parent's ``explore=local`` candidates differ.
        parent_distance: genes in which ``explore=local`` parents differ pairwise.
    """

    def __init__(
        self,
        n_evals: int = 100,
        pop_size: int = 20,
        n_offsprings: int | None = None,
        crossover_prob: float = 0.9,
        crossover_eta: float = 15.0,
        mutation_eta: float = 20.0,
        seed: int | None = None,
        surrogate: Surrogate | None = None,
        n_doe: int = 100,
        n_candidates: int = 8,
        surrogate_pop_size: int = 40,
        surrogate_generations: int = 20,
        surrogate_mutation_eta: float = 1.0,
        subset_pop_size: int = 100,
        subset_generations: int = 60,
        doe_extremes: bool = True,
        so_generations: int = 60,
        explore: str = "none",
        min_distance: int = 2,
        parent_distance: int = 3,
    ) -> None:
        super().__init__(n_evals, seed)
        if pop_size < 2:
            raise ValueError(f"search.pop_size must be >= 2, got {pop_size}")
        if n_offsprings is not None and n_offsprings < 1:
            raise ValueError(f"search.n_offsprings must be >= 1, got {n_offsprings}")
        self.pop_size, self.n_offsprings = pop_size, n_offsprings
        self.crossover_prob, self.crossover_eta = crossover_prob, crossover_eta
        self.mutation_eta = mutation_eta
        self._pop: Population | None = None
        self.msunas = (
            MSuNAS(
                surrogate,
                n_doe=n_doe,
                n_candidates=n_candidates,
                pop_size=surrogate_pop_size,
                generations=surrogate_generations,
                crossover_prob=crossover_prob,
                mutation_eta=surrogate_mutation_eta,
                subset_pop_size=subset_pop_size,
                subset_generations=subset_generations,
                doe_extremes=doe_extremes,
                so_generations=so_generations,
                explore=explore,
                min_distance=min_distance,
                parent_distance=parent_distance,
            )
            if surrogate is not None
            else None
        )

    def _setup(self, seed: int) -> None:
        if self.msunas is not None:
            costs = self.costs
            if costs is None:
                n = self.n_constr

                def costs(_: Architecture) -> tuple[np.ndarray, np.ndarray]:
                    return np.zeros(0), np.zeros(n)

            self.msunas.setup(self.space, self.n_obj, self.rng, costs)
            return
        problem = Problem(
            n_var=self.space.n_var,
            n_obj=self.n_obj,
            n_ieq_constr=self.n_constr,
            xl=self.space.lower,
            xu=self.space.upper,
            vtype=int,
        )
        self.algorithm = NSGA2(
            pop_size=self.pop_size,
            n_offsprings=self.n_offsprings,
            sampling=IntegerRandomSampling(),
            crossover=SBX(
                prob=self.crossover_prob,
                eta=self.crossover_eta,
                vtype=float,
                repair=RoundingRepair(),
            ),
            mutation=PM(eta=self.mutation_eta, vtype=float, repair=RoundingRepair()),
            eliminate_duplicates=True,
        )
        self.algorithm.setup(problem, termination=("n_gen", 10**9), seed=seed, verbose=False)

    def _ask(self) -> list[Architecture]:
        if self.msunas is not None:
            return self.msunas.ask()
        self._pop = self.algorithm.ask()
        archs = [self.space.decode(x) for x in self._pop.get("X")]
        # the space may repair a decoded gene vector; pymoo must see the repaired one
        self._pop.set("X", np.array([a.encode() for a in archs]))
        return archs

    def _rescore(self, F: dict[tuple[int, ...], np.ndarray]) -> None:
        if self.msunas is not None:
            self.msunas.rescore(F)
            return
        pop = getattr(self.algorithm, "pop", None)
        if pop is None or len(pop) == 0:
            return
        rows = pop.get("F")
        for i, x in enumerate(pop.get("X")):
            key = tuple(int(v) for v in x)
            if key in F:
                rows[i] = F[key]
        pop.set("F", rows)
        # mating selection reads rank and crowding: recompute them for the new values
        self.algorithm.pop = self.algorithm.survival.do(
            self.algorithm.problem, pop, n_survive=len(pop), algorithm=self.algorithm
        )

    def _tell(self, archs: list[Architecture], F: np.ndarray) -> None:
        if self.msunas is not None:
            self.msunas.tell(archs, F, self._G)
            return
        assert self._pop is not None, "tell() before ask()"
        # pymoo's documented ask/tell recipe: values computed outside enter via StaticProblem
        static = (
            StaticProblem(self.algorithm.problem, F=F, G=self._G)
            if self.n_constr
            else (StaticProblem(self.algorithm.problem, F=F))
        )
        Evaluator().eval(static, self._pop)
        self.algorithm.tell(infills=self._pop)

    def info(self) -> dict[str, Any]:
        """``{"surrogate": {name, winner, rmse, rho, tau}}`` after each MSuNAS iteration."""
        if self.msunas is None or self.msunas.fit_report is None:
            return {}
        return {"surrogate": self.msunas.fit_report}
