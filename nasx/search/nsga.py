"""NSGA-II (pymoo) on the integer encoding, every offspring evaluated."""

from __future__ import annotations

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
from nasx.search_space.base import Architecture


class NSGASearch(SearchStrategy):
    """pymoo NSGA-II over the space's integer genes; objectives come from the pipeline.

    Without a surrogate, every offspring is evaluated: integer variables use pymoo's integer
    recipe (random integer sampling, SBX and polynomial mutation followed by rounding,
    duplicate elimination) and bounded costs enter as pymoo inequality constraints.

    The surrogate-assisted form of NSGANetV2 is its own strategy, ``search=msunas``
    (`nasx.search.MSuNASSearch`).

    Args:
        n_evals: budget (distinct architectures).
        pop_size: population size.
        n_offsprings: offspring per generation (``None``: ``pop_size``).
        crossover_prob: SBX probability.
        crossover_eta: SBX distribution index.
        mutation_eta: polynomial-mutation distribution index.
        seed: own seed for pymoo (``None``: the run seed).
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

    def _setup(self, seed: int) -> None:
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
        self._pop = self.algorithm.ask()
        archs = [self.space.decode(x) for x in self._pop.get("X")]
        # the space may repair a decoded gene vector; pymoo must see the repaired one
        self._pop.set("X", np.array([a.encode() for a in archs]))
        return archs

    def _rescore(self, F: dict[tuple[int, ...], np.ndarray]) -> None:
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
        assert self._pop is not None, "tell() before ask()"
        # pymoo's documented ask/tell recipe: values computed outside enter via StaticProblem
        static = (
            StaticProblem(self.algorithm.problem, F=F, G=self._G)
            if self.n_constr
            else (StaticProblem(self.algorithm.problem, F=F))
        )
        Evaluator().eval(static, self._pop)
        self.algorithm.tell(infills=self._pop)
