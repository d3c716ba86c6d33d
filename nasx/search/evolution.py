"""SPOS/RLNAS/GeNAS evolutionary search: top-k parents, mutation, crossover, random refill."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nasx.search.base import SearchStrategy
from nasx.search_space.base import Architecture

#: score given to an architecture that violates a constraint (plus its violation)
INFEASIBLE = 1e12


class EvolutionSearch(SearchStrategy):
    """The evolution loop of RLNAS/GeNAS (``search.py``), on the first objective only.

    Each generation evaluates the population, merges it into an elitist top-``top_k`` list,
    then builds the next population from ``n_mutation`` mutants and ``n_crossover`` children
    of parents drawn uniformly from the top-k, refilled with random architectures up to
    ``population``. Architectures seen before are never proposed again.

    Defaults are RLNAS's NAS-Bench-201 settings (population 100, top-30, 50 + 50, p=0.1,
    20 generations); GeNAS's DARTS settings are 50 / 10 / 25 / 25 / 0.1 / 20.

    Args:
        n_evals: budget (distinct architectures).
        population: candidates per generation.
        top_k: parents kept across generations.
        n_mutation: mutants per generation.
        n_crossover: crossover children per generation.
        mutation_prob: per-gene re-draw probability.
        generations: number of evaluated generations.
        seed: own seed (``None``: the run seed).
        crossover_first: build the crossover children first, then ``n_mutation`` plus as many
            mutants as children fell short (RLNAS MobileNet: 25 children, then 50 minus their
            number of mutants); ``False``: mutants first (RLNAS NB201, GeNAS/RLNAS DARTS).
        legal_only: never propose an architecture that violates a cost bound (RLNAS
            ``legal()``: such candidates are dropped before evaluation, using the exact costs);
            ``False`` evaluates them and ranks them behind every feasible one.
    """

    def __init__(
        self,
        n_evals: int = 2000,
        population: int = 100,
        top_k: int = 30,
        n_mutation: int = 50,
        n_crossover: int = 50,
        mutation_prob: float = 0.1,
        generations: int = 20,
        seed: int | None = None,
        crossover_first: bool = False,
        legal_only: bool = False,
    ) -> None:
        super().__init__(n_evals, seed)
        for name, v in (("population", population), ("top_k", top_k), ("generations", generations)):
            if v < 1:
                raise ValueError(f"search.{name} must be >= 1, got {v}")
        if n_mutation < 0 or n_crossover < 0:
            raise ValueError("search.n_mutation and search.n_crossover must be >= 0")
        if not 0.0 <= mutation_prob <= 1.0:
            raise ValueError(f"search.mutation_prob must be in [0, 1], got {mutation_prob}")
        self.population, self.top_k = population, top_k
        self.n_mutation, self.n_crossover = n_mutation, n_crossover
        self.mutation_prob, self.generations = mutation_prob, generations
        self.crossover_first, self.legal_only = crossover_first, legal_only
        self._seen: set[tuple[int, ...]] = set()
        self._top: list[tuple[float, Architecture]] = []
        self._next: list[Architecture] = []
        self._generation = 0

    def _ask(self) -> list[Architecture]:
        if self._generation >= self.generations:
            return []
        if self._generation == 0 and not self._next:
            self._next = self._random(self.population)
        return list(self._next)

    def _tell(self, archs: list[Architecture], F: np.ndarray) -> None:
        # a violated constraint ranks behind every feasible architecture (Deb's rule)
        violation = np.clip(self._G, 0, None).sum(axis=1) if self._G.size else np.zeros(len(F))
        score = np.where(violation > 0, INFEASIBLE + violation, F[:, 0])
        merged = {a.genes: (float(f), a) for f, a in self._top}
        merged.update({a.genes: (float(f), a) for a, f in zip(archs, score, strict=True)})
        self._top = sorted(merged.values(), key=lambda t: t[0])[: self.top_k]
        self._generation += 1
        parents = [a for _, a in self._top]
        if self.crossover_first:
            nxt = self._offspring(parents, self.n_crossover, self._child)
            short = self.n_crossover - len(nxt)
            nxt += self._offspring(parents, self.n_mutation + short, self._mutant)
        else:
            nxt = self._offspring(parents, self.n_mutation, self._mutant)
            nxt += self._offspring(parents, self.n_crossover, self._child)
        nxt += self._random(self.population - len(nxt))
        self._next = nxt

    def _rescore(self, F: dict[tuple[int, ...], np.ndarray]) -> None:
        rows = [(float(F[a.genes][0]) if a.genes in F else f, a) for f, a in self._top]
        self._top = sorted(rows, key=lambda t: t[0])

    def _mutant(self, parents: list[Architecture]) -> Architecture:
        parent = parents[int(self.rng.integers(len(parents)))]
        return self.space.mutate(parent, self.rng, self.mutation_prob)

    def _child(self, parents: list[Architecture]) -> Architecture:
        a, b = (parents[int(i)] for i in self.rng.integers(len(parents), size=2))
        return self.space.crossover(a, b, self.rng)

    def _offspring(
        self,
        parents: list[Architecture],
        n: int,
        make: Callable[[list[Architecture]], Architecture],
    ) -> list[Architecture]:
        out: list[Architecture] = []
        # the original gives up after (n + 1) * 10 proposals, so fewer than n is possible
        for _ in range((n + 1) * 10):
            if len(out) >= n:
                break
            a = make(parents)
            if a.genes not in self._seen:
                self._seen.add(a.genes)
                if self._legal(a):
                    out.append(a)
        return out

    def _legal(self, arch: Architecture) -> bool:
        """Whether ``arch`` may be proposed (always, unless ``legal_only`` and it violates)."""
        if not self.legal_only or self.costs is None or self.n_constr == 0:
            return True
        return bool(np.all(self.costs(arch)[1] <= 0))

    def _random(self, n: int) -> list[Architecture]:
        out: list[Architecture] = []
        for _ in range(100 * max(n, 1)):
            if len(out) >= n:
                break
            a = self.space.sample(self.rng)
            if a.genes not in self._seen:
                self._seen.add(a.genes)
                if self._legal(a):
                    out.append(a)
        return out
