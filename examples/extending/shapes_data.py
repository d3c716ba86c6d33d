"""A user dataset: subclass `TensorImageData` and return raw uint8 images from `_load`."""

from __future__ import annotations

import numpy as np

from nasx.data import TensorImageData
from nasx.data.base import RawImages


class ShapesData(TensorImageData):
    """Grey squares, discs and crosses at random positions (3 classes), generated from a seed."""

    num_classes = 3
    mean = (0.2,)
    std = (0.4,)

    def __init__(
        self,
        num_train: int = 300,
        num_test: int = 60,
        size: int = 12,
        seed: int = 0,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        valid_fraction: float = 0.5,
        split_seed: int = 0,
        augment: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers
        )
        self.num_train, self.num_test, self.size, self.seed = num_train, num_test, size, seed

    def _draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        yy, xx = np.mgrid[: self.size, : self.size]
        x = np.zeros((n, self.size, self.size, 1), dtype=np.uint8)
        y = rng.integers(0, 3, n)
        for i in range(n):
            cy, cx = rng.integers(3, self.size - 3, 2)
            if y[i] == 0:
                mask = (abs(yy - cy) <= 2) & (abs(xx - cx) <= 2)
            elif y[i] == 1:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= 6
            else:
                mask = (yy == cy) | (xx == cx)
            x[i, mask, 0] = 255
        return x, y

    def _load(self) -> RawImages:
        rng = np.random.default_rng(self.seed)
        trx, try_ = self._draw(rng, self.num_train)
        tex, tey = self._draw(rng, self.num_test)
        return RawImages(trx, try_, tex, tey)
