"""RLNAS MobileNet's evolution rules: crossover children first, illegal candidates dropped."""

from __future__ import annotations

import numpy as np

from nasx.objective.flops_lut import FlopsLUTObjective
from nasx.search import EvolutionSearch
from nasx.search_space import MobileNetSpace, NB201Space


def _costs(space, bound: float):
    cost = FlopsLUTObjective(upper=bound)

    def row(arch):
        value = cost(arch, space)
        return np.array([value]), np.array([cost.violation(value)])

    return row


def test_legal_only_never_proposes_an_architecture_over_the_bound() -> None:
    space = MobileNetSpace(num_classes=10, image_size=32, width_mult=0.25)
    costs = _costs(space, 1.25)  # about half of the space meets it
    strat = EvolutionSearch(
        n_evals=200, population=20, top_k=5, n_mutation=10, n_crossover=10, generations=4,
        legal_only=True,
    )  # fmt: skip
    strat.setup(space, 2, 0, 1, costs)
    proposed = []
    for _ in range(4):
        archs = strat.ask()
        proposed += archs
        F = np.array([[float(i), costs(a)[0][0]] for i, a in enumerate(archs)])
        strat.tell(archs, F, np.array([costs(a)[1] for a in archs]))
    assert len(proposed) >= 60
    assert all(costs(a)[1][0] <= 0 for a in proposed)
    # without the rule, the same search proposes illegal ones (RLNAS NB201/DARTS behaviour)
    plain = EvolutionSearch(n_evals=200, population=20, top_k=5, generations=1)
    plain.setup(space, 2, 0, 1, costs)
    assert any(costs(a)[1][0] > 0 for a in plain.ask())


def _offspring_order(crossover_first: bool) -> list[str]:
    space = NB201Space(num_classes=10)
    strat = EvolutionSearch(
        n_evals=500, population=12, top_k=4, n_mutation=4, n_crossover=4, generations=3,
        crossover_first=crossover_first, mutation_prob=0.1,
    )  # fmt: skip
    strat.setup(space, 1, 0)
    kinds: list[str] = []
    strat._mutant = _tag(strat._mutant, "m", kinds)  # type: ignore[method-assign]
    strat._child = _tag(strat._child, "c", kinds)  # type: ignore[method-assign]
    archs = strat.ask()
    strat.tell(archs, np.arange(len(archs), dtype=float)[:, None])
    return kinds


def _tag(fn, kind: str, log: list[str]):
    def wrapped(parents):
        log.append(kind)
        return fn(parents)

    return wrapped


def test_crossover_first_builds_children_before_mutants() -> None:
    first = _offspring_order(True)
    assert first[0] == "c" and first.index("m") > max(i for i, k in enumerate(first) if k == "c")
    default = _offspring_order(False)
    assert default[0] == "m"
