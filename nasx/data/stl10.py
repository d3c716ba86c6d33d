"""STL-10 (96 px, labelled part) from torchvision's ``stl10_binary`` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nasx.data._torchvision_sets import DiskTensorData
from nasx.data.base import RawImages


class STL10Data(DiskTensorData):
    """STL-10: 5,000 labelled training and 8,000 test images of 96 px, 10 classes.

    NSGANetV2's transfer split (``split='train'`` / ``'test'``; the 100k unlabelled images
    are not used). Read through torchvision's ``STL10`` from
    ``root/stl10_binary/{train,test}_{X,y}.bin`` (column-major 3x96x96 uint8 images, labels
    1-10 mapped to 0-9); torchvision checks that ``unlabeled_X.bin`` is there too, as the
    official archive (fetched when ``download=true``) holds it. Images are resized to the
    space's input size once, in memory (13k images: 1.4 GB as float tensors at 96 px).

    Args:
        root: the folder holding ``stl10_binary/`` (required).
        download: let torchvision download the data into ``root`` when it is not there.
        limit_train: use only this many training images (a fixed random subset), for CPU budgets.
        limit_test: use only this many test images.
        batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers:
            see `nasx.data.base.ImageData`.
    """

    num_classes = 10
    # NSGANetV2's STL-10 normalisation (codebase/data_providers/stl10.py)
    mean = (0.44671097, 0.4398105, 0.4066468)
    std = (0.2603405, 0.25657743, 0.27126738)
    name = "STL-10"
    layout = "torchvision's root/stl10_binary/{train_X,train_y,test_X,test_y,unlabeled_X}.bin"

    def _read(self, root: Path) -> RawImages:
        from torchvision.datasets import STL10

        tr = STL10(str(root), split="train", download=self.download)
        te = STL10(str(root), split="test", download=self.download)
        assert tr.labels is not None and te.labels is not None  # labelled splits
        ti, si = self.pick(len(tr.labels), True), self.pick(len(te.labels), False)
        # torchvision keeps (N, C, H, W); RawImages are (N, H, W, C)
        return RawImages(
            np.ascontiguousarray(tr.data[ti].transpose(0, 2, 3, 1)),
            np.asarray(tr.labels)[ti].astype(np.int64),
            np.ascontiguousarray(te.data[si].transpose(0, 2, 3, 1)),
            np.asarray(te.labels)[si].astype(np.int64),
        )
