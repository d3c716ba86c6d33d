"""NSGANetV2's integer polynomial mutation, on pymoo 0.6's polynomial-mutation kernel.

NSGANetV2 ran on pymoo 0.4.1, whose ``int_pm`` (``IntegerFromFloatMutation``) widens each
variable's bounds by 0.5 on both sides, applies real polynomial mutation there (per-variable
probability ``1 / n_var``, every individual eligible), and rounds to the nearest integer. The
widening gives the bound values a full unit interval, as interior values have. pymoo 0.6 has
no such operator: its ``PM`` with a rounding repair mutates within the unwidened bounds, which
halves the chance of reaching a bound value (reference notes §1, §6.1). The 0.6 kernel
`pymoo.operators.mutation.pm.mut_pm` does the mutation here; only the widening and the
rounding are nasx's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.core.mutation import Mutation
from pymoo.operators.mutation.pm import mut_pm

#: pymoo 0.4.1 ``apply_float_operation`` widens the bounds by this much on each side
WIDEN = 0.5 - 1e-16


class IntegerPolynomialMutation(Mutation):
    """NSGANetV2's ``int_pm``: polynomial mutation in bounds widened by 0.5, then rounded.

    Args:
        eta: distribution index (NSGANetV2: 1.0).
        prob_var: per-variable mutation probability (``None``: ``1 / n_var``, as pymoo 0.4.1).
    """

    def __init__(self, eta: float = 1.0, prob_var: float | None = None) -> None:
        super().__init__(prob=1.0)
        if eta < 0:
            raise ValueError(f"mutation eta must be >= 0, got {eta}")
        self.eta_value, self.prob_var_value = float(eta), prob_var

    def _do(
        self, problem: Any, X: np.ndarray, *args: Any, random_state: Any = None, **kwargs: Any
    ) -> np.ndarray:
        xl = np.asarray(problem.xl, dtype=float)
        xu = np.asarray(problem.xu, dtype=float)
        p = self.prob_var_value if self.prob_var_value is not None else 1.0 / problem.n_var
        n = len(X)
        Y = mut_pm(
            np.asarray(X, dtype=float),
            xl - WIDEN,
            xu + WIDEN,
            np.full(n, self.eta_value),
            np.full(n, p),
            at_least_once=False,
            random_state=random_state,
        )
        return np.clip(np.round(Y), xl, xu).astype(int)
