"""SVHN (Street View House Numbers, cropped digits) from torchvision's ``.mat`` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nasx.data._torchvision_sets import DiskTensorData
from nasx.data.base import RawImages


class SVHNData(DiskTensorData):
    """SVHN: 73,257 training and 26,032 test digits of 32 px, labels 0-9.

    Read through torchvision's ``SVHN`` (``root/train_32x32.mat`` and ``root/test_32x32.mat``,
    fetched there when ``download=true``), which maps the files' label 10 to digit 0. The
    531k ``extra`` images are not used (CNAS trains on ``split='train'`` only).

    Args:
        root: the folder holding ``train_32x32.mat`` and ``test_32x32.mat`` (required).
        download: let torchvision download the data into ``root`` when it is not there.
        limit_train: use only this many training images (a fixed random subset), for CPU budgets.
        limit_test: use only this many test images.
        batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers:
            see `nasx.data.base.ImageData`.
    """

    num_classes = 10
    # CNAS's SVHN normalisation (train_utils.py get_dataset, codebase/data_providers/svhn.py)
    mean = (0.4376821, 0.4437697, 0.47280442)
    std = (0.19803012, 0.20101562, 0.19703614)
    name = "SVHN"
    layout = "torchvision's root/train_32x32.mat and root/test_32x32.mat"

    def _read(self, root: Path) -> RawImages:
        from torchvision.datasets import SVHN

        tr = SVHN(str(root), split="train", download=self.download)
        te = SVHN(str(root), split="test", download=self.download)
        ti, si = self.pick(len(tr.labels), True), self.pick(len(te.labels), False)
        # torchvision keeps (N, C, H, W); RawImages are (N, H, W, C)
        return RawImages(
            np.ascontiguousarray(tr.data[ti].transpose(0, 2, 3, 1)),
            np.asarray(tr.labels)[ti],
            np.ascontiguousarray(te.data[si].transpose(0, 2, 3, 1)),
            np.asarray(te.labels)[si],
        )
