"""Synthetic images for fast tests: class templates plus noise, so accuracy is learnable."""

from __future__ import annotations

import numpy as np

from nasx.data.base import RawImages, TensorImageData


class FakeData(TensorImageData):
    """``num_train`` + ``num_test`` RGB images of ``size`` pixels in ``num_classes`` classes.

    Args:
        num_train: training images (split into train and valid).
        num_test: test images.
        size: native image size (the data is resized to the space's input size).
        num_classes: number of classes.
        seed: seed of the generated pixels.
        batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers:
            see `nasx.data.base.ImageData`.
    """

    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)

    def __init__(
        self,
        num_train: int = 256,
        num_test: int = 64,
        size: int = 8,
        num_classes: int = 4,
        seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int = 64,
        valid_fraction: float = 0.5,
        split_seed: int = 0,
        augment: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers
        )
        self.num_train, self.num_test, self.size = num_train, num_test, size
        self.num_classes, self.seed = num_classes, seed

    def _load(self) -> RawImages:
        rng = np.random.default_rng(self.seed)
        templates = rng.uniform(0, 255, size=(self.num_classes, self.size, self.size, 3))

        def make(n: int) -> tuple[np.ndarray, np.ndarray]:
            y = rng.integers(0, self.num_classes, n)
            x = templates[y] + rng.normal(0, 40, size=(n, self.size, self.size, 3))
            return np.clip(x, 0, 255).astype(np.uint8), y

        trx, try_ = make(self.num_train)
        tex, tey = make(self.num_test)
        return RawImages(trx, try_, tex, tey)
