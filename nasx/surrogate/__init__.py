"""Accuracy predictors of NSGANetV2/MSuNAS and CNAS (config group ``surrogate``).

Every predictor is a `Surrogate`: ``fit(X, y)`` on architecture encodings, ``predict(X)``.
`make_surrogate` builds one by its NSGANetV2 name (``rbf``, ``gp``, ``carts``, ``mlp``, ``as``);
adaptive switching uses it for its pool.
"""

from __future__ import annotations

from typing import Any

from nasx.surrogate.adaptive import AdaptiveSwitching as AdaptiveSwitching
from nasx.surrogate.base import Surrogate as Surrogate
from nasx.surrogate.base import fit_quality as fit_quality
from nasx.surrogate.carts import CartsSurrogate as CartsSurrogate
from nasx.surrogate.gp import GPSurrogate as GPSurrogate
from nasx.surrogate.mlp import MLPSurrogate as MLPSurrogate
from nasx.surrogate.rbf import RBFSurrogate as RBFSurrogate

SURROGATES: dict[str, type[Surrogate]] = {
    cls.name: cls
    for cls in (RBFSurrogate, GPSurrogate, CartsSurrogate, MLPSurrogate, AdaptiveSwitching)
}


def make_surrogate(name: str, seed: int = 0, **kwargs: Any) -> Surrogate:
    """The surrogate registered as ``name``, built with ``seed`` and constructor ``kwargs``."""
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}: choose one of {sorted(SURROGATES)}")
    return SURROGATES[name](seed=seed, **kwargs)


__all__ = [
    "SURROGATES",
    "AdaptiveSwitching",
    "CartsSurrogate",
    "GPSurrogate",
    "MLPSurrogate",
    "RBFSurrogate",
    "Surrogate",
    "fit_quality",
    "make_surrogate",
]
