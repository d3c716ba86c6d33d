"""Path samplers: which sub-network a supernet training step runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from nasx.search_space.base import SearchSpace


class UniformPathSampler:
    """SPOS uniform single-path sampling, a pure function of ``(seed, step)``.

    GeNAS/RLNAS reseed numpy from a step counter so that every DDP rank draws the same path;
    deriving the generator from ``(seed, step)`` keeps that property, survives resuming, and
    touches no global RNG.
    """

    def __init__(self, space: SearchSpace, seed: int) -> None:
        self.space, self.seed = space, seed

    def __call__(self, step: int) -> Any:
        return self.space.sample_path(np.random.default_rng([self.seed, step]))
