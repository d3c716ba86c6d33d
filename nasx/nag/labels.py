"""NAG's requirement labels: ordinal classes of accuracy and parameter size, and conditions.

The reference (`utils.py:22-67`, ``NASBenchwithLabel``) turns each objective into 3 classes
by terciles of the training data: class 0 is the worst third of accuracy and the smallest
third of parameters, class 2 the best and the largest. A requirement names one class per
objective, as a string: ``high_acc`` (single-objective) or ``high_acc+small_params``
(multi-objective, the README's "few params, high acc").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from nasx.nag.graph import CellGraph, GraphAdapter
from nasx.objective.profile import count_params
from nasx.search_space.base import Architecture, SearchSpace

#: class names of the 3-class accuracy labels (class 0 first)
ACC_LEVELS = ("low", "mid", "high")
#: class names of the 3-class parameter labels (class 0 first)
PARAMS_LEVELS = ("small", "medium", "large")
#: the reference's params unit per output in-degree, normal then reduction cell (§2.6)
REFERENCE_IN_DEGREE_WEIGHTS = (25200.0, 8000.0)


def class_thresholds(values: Sequence[float] | np.ndarray, n_classes: int = 3) -> np.ndarray:
    """The reference's ``n_classes - 1`` thresholds: ``sorted(values)[len // n * i]``."""
    v = np.sort(np.asarray(values, dtype=float).reshape(-1))
    if n_classes < 2 or len(v) < n_classes:
        raise ValueError(f"need n_classes >= 2 and at least that many values, got {n_classes}")
    return np.asarray([v[len(v) // n_classes * i] for i in range(1, n_classes)])


def assign_classes(values: Sequence[float] | np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The first ``i`` with ``value <= thresholds[i]``, else ``len(thresholds)`` (int64)."""
    v = np.asarray(values, dtype=float).reshape(-1)
    return np.searchsorted(np.asarray(thresholds, dtype=float), v, side="left").astype(np.int64)


def class_labels(values: Sequence[float] | np.ndarray, n_classes: int = 3) -> np.ndarray:
    """Ordinal classes of ``values`` by quantiles of ``values`` themselves (terciles for 3)."""
    return assign_classes(values, class_thresholds(values, n_classes))


def nag_labels(
    accuracy: Sequence[float] | np.ndarray,
    params: Sequence[float] | np.ndarray | None = None,
    n_acc_classes: int = 3,
    n_params_classes: int = 3,
) -> np.ndarray:
    """The GAN's label matrix: ``(N, 1)`` accuracy classes, or ``(N, 2)`` with params classes."""
    cols = [class_labels(accuracy, n_acc_classes)]
    if params is not None:
        cols.append(class_labels(params, n_params_classes))
    return np.stack(cols, axis=1)


def param_counts(space: SearchSpace, archs: Sequence[Architecture]) -> np.ndarray:
    """Parameters (millions) of each architecture's stand-alone network (`build_network`)."""
    return np.asarray([count_params(space.build_network(a)) for a in archs], dtype=float)


def output_in_degrees(
    graphs: Sequence[Sequence[CellGraph]],
    weights: Sequence[float] = REFERENCE_IN_DEGREE_WEIGHTS,
) -> np.ndarray:
    """The reference's "params": the output vertex's in-degree, weighted per cell kind.

    NAG's stored params mix units and are truncated to an integer, so they are almost
    ``25,200 * indeg(normal output) + 8,000 * indeg(reduction output)`` (§2.6 of the notes;
    §8.2 calls it a bug). ``weights[k]`` weighs cell kind ``k``; kinds past ``weights`` get 1.
    """
    out = []
    for cells in graphs:
        total = 0.0
        for k, g in enumerate(cells):
            w = weights[k] if k < len(weights) else 1.0
            total += w * len(g.predecessors(g.n_vertices - 1))
        out.append(total)
    return np.asarray(out, dtype=float)


def params_values(
    adapter: GraphAdapter,
    archs: Sequence[Architecture],
    source: Literal["count", "output_in_degree"] = "count",
) -> np.ndarray:
    """The parameter size each params label is the class of.

    ``count`` (default): the true parameter count of the stand-alone network (`param_counts`).
    ``output_in_degree``: the reference's in-degree proxy (`output_in_degrees`), to reproduce
    its labels; it is constant on NAS-Bench-201, whose output always has 3 predecessors.
    """
    if source == "count":
        return param_counts(adapter.space, archs)
    if source == "output_in_degree":
        return output_in_degrees([adapter.to_graphs(a) for a in archs])
    raise ValueError(f"params source must be 'count' or 'output_in_degree', got {source!r}")


_TERM = re.compile(r"^(\w+?)_(acc|params)$")


@dataclass(frozen=True)
class Condition:
    """A requirement: one class per objective (accuracy, and parameters when multi-objective).

    Attributes:
        acc: the accuracy class (``2`` = ``high`` with 3 classes).
        params: the params class (``0`` = ``small``), or ``None`` for single-objective.
    """

    acc: int
    params: int | None = None

    @classmethod
    def parse(cls, text: str) -> Condition:
        """``high_acc``, ``low_acc+large_params``, ...; a class may be an index (``2_acc``).

        Names: accuracy ``low, mid, high``; params ``small, medium, large`` (3 classes).
        """
        found: dict[str, int] = {}
        for term in text.strip().split("+"):
            m = _TERM.match(term.strip())
            if m is None or m.group(2) in found:
                raise ValueError(_condition_hint(text))
            level, objective = m.groups()
            names = ACC_LEVELS if objective == "acc" else PARAMS_LEVELS
            if level.isdigit():
                found[objective] = int(level)
            elif level in names:
                found[objective] = names.index(level)
            else:
                raise ValueError(_condition_hint(text))
        if "acc" not in found:
            raise ValueError(_condition_hint(text))
        return cls(found["acc"], found.get("params"))

    def labels(self) -> tuple[int, ...]:
        """The label row the generator is conditioned on: ``(acc,)`` or ``(acc, params)``."""
        return (self.acc,) if self.params is None else (self.acc, self.params)

    def __str__(self) -> str:
        acc = ACC_LEVELS[self.acc] if self.acc < len(ACC_LEVELS) else str(self.acc)
        if self.params is None:
            return f"{acc}_acc"
        par = PARAMS_LEVELS[self.params] if self.params < len(PARAMS_LEVELS) else str(self.params)
        return f"{acc}_acc+{par}_params"


def _condition_hint(text: str) -> str:
    return (
        f"cannot read the condition {text!r}: expected <level>_acc or <level>_acc+<level>_params "
        f"with accuracy levels {', '.join(ACC_LEVELS)} and params levels "
        f"{', '.join(PARAMS_LEVELS)} (or class indices, e.g. 2_acc)"
    )
