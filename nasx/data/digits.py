"""scikit-learn's handwritten digits: real data that ships with scikit-learn (no download)."""

from __future__ import annotations

import numpy as np

from nasx.data.base import RawImages, TensorImageData


class DigitsData(TensorImageData):
    """1,797 8x8 grey digits (UCI), upsampled to the space's input size.

    Args:
        test_fraction: share held out as the test split (fixed by ``split_seed``).
        batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers:
            see `nasx.data.base.ImageData`.
    """

    num_classes = 10
    mean = (0.2672,)
    std = (0.3766,)

    def __init__(
        self,
        test_fraction: float = 0.2,
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
        self.test_fraction = test_fraction

    def _load(self) -> RawImages:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
        y = d.target.astype(np.int64)
        perm = np.random.default_rng(self.split_seed + 1).permutation(len(y))
        n_test = int(round(len(y) * self.test_fraction))
        te, tr = perm[:n_test], perm[n_test:]
        return RawImages(x[tr], y[tr], x[te], y[te])
