"""CNAS's ``tiny_ml`` figure of merit: params, MACs and activations under exterior penalties."""

from __future__ import annotations

from nasx.objective.activations import count_activations
from nasx.objective.base import Objective
from nasx.objective.profile import count_macs, count_params
from nasx.search_space.base import Architecture, SearchSpace


def tiny_ml(
    params: float,
    macs: float,
    activations: float,
    pmax: float = 2.0,
    mmax: float = 1e10,
    amax: float = 5.0,
    wp: float = 1.0,
    wm: float = 1 / 40,
    wa: float = 1.0,
    pen: float = 1e10,
) -> float:
    """CNAS ``tiny_ml`` (``utils.py:560-562``), all quantities in millions.

    ``wp*(P + pen*max(0, P-pmax)) + wm*(M + pen*max(0, M-mmax)) + wa*(A + pen*max(0, A-amax))``
    with P = ``params``, M = ``macs``, A = ``activations``. The defaults are CNAS HEAD's.
    """
    return (
        wp * (params + pen * max(0.0, params - pmax))
        + wm * (macs + pen * max(0.0, macs - mmax))
        + wa * (activations + pen * max(0.0, activations - amax))
    )


class TinyMLObjective(Objective):
    """`tiny_ml` of the stand-alone network at the space's input size.

    P is `ParamsObjective`'s count, M `FlopsObjective`'s (MACs) and A `ActivationsObjective`'s,
    all in millions, measured on one freshly built network.

    Args:
        pmax, mmax, amax: caps on params, MACs and activations (millions) above which the
            exterior penalty applies; CNAS HEAD defaults 2, 1e10 (no cap), 5. The paper's
            CIFAR-10 runs used 2.2, 7 and 0.3.
        wp, wm, wa: weights of the three terms (CNAS: 1, 1/40, 1).
        pen: the penalty factor *inside* the formula (CNAS's ``penalty``, 1e10). It is named
            ``pen`` because ``penalty`` is the base class's factor for a bound on the
            ``tiny_ml`` value itself (``upper``/``lower`` with ``handling="penalty"``).
        round_to: decimals P, M and A are rounded to before the formula (CNAS stores 2);
            ``None`` uses exact values.
        upper, lower, handling, penalty: bounds on the ``tiny_ml`` value, see
            `nasx.objective.base.Objective`.
    """

    name = "tiny_ml"

    def __init__(
        self,
        pmax: float = 2.0,
        mmax: float = 1e10,
        amax: float = 5.0,
        wp: float = 1.0,
        wm: float = 0.025,
        wa: float = 1.0,
        pen: float = 1e10,
        round_to: int | None = None,
        upper: float | None = None,
        lower: float | None = None,
        handling: str = "constraint",
        penalty: float = 1e10,
    ) -> None:
        super().__init__(upper=upper, lower=lower, handling=handling, penalty=penalty)
        for key, v in (("wp", wp), ("wm", wm), ("wa", wa), ("pen", pen)):
            if v < 0:
                raise ValueError(f"tiny_ml: {key}={v} must be >= 0")
        if round_to is not None and round_to < 0:
            raise ValueError(f"tiny_ml: round_to={round_to} must be >= 0 or null")
        self.pmax, self.mmax, self.amax = float(pmax), float(mmax), float(amax)
        self.wp, self.wm, self.wa, self.pen = float(wp), float(wm), float(wa), float(pen)
        self.round_to = round_to

    def parts(self, arch: Architecture, space: SearchSpace) -> dict[str, float]:
        """P, M and A of ``arch`` in millions (rounded as ``round_to`` says)."""
        net = space.build_network(arch)
        out = {
            "params": count_params(net),
            "macs": count_macs(net, space.input_shape_of(arch)),
            "activations": count_activations(net, space.input_shape_of(arch)) / 1e6,
        }
        if self.round_to is not None:
            out = {k: round(v, self.round_to) for k, v in out.items()}
        return out

    def _compute(self, arch: Architecture, space: SearchSpace) -> float:
        p = self.parts(arch, space)
        return tiny_ml(
            p["params"],
            p["macs"],
            p["activations"],
            pmax=self.pmax,
            mmax=self.mmax,
            amax=self.amax,
            wp=self.wp,
            wm=self.wm,
            wa=self.wa,
            pen=self.pen,
        )
