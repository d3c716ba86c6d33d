"""CIFAR-100 (100 fine classes) from torchvision's ``cifar-100-python`` files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nasx.data._torchvision_sets import DiskTensorData
from nasx.data.base import RawImages
from nasx.ood.corruptions import CorruptionSource


class CIFAR100Data(DiskTensorData):
    """CIFAR-100: 50k training and 10k test images of 32 px, the 100 fine labels.

    GeNAS searches on it by default (``get_datasets('cifar100', ...)``) with half of the
    training images as the valid split (``--split_data 1``: ``valid_fraction=0.5``) and
    RandomCrop(32, pad 4) + flip (``augment``). Read through torchvision's ``CIFAR100``
    (``root/cifar-100-python/{train,test,meta}``, fetched there when ``download=true``).

    Args:
        root: the folder holding ``cifar-100-python/`` (required).
        download: let torchvision download the data into ``root`` when it is not there.
        limit_train: use only this many training images (a fixed random subset), for CPU budgets.
        limit_test: use only this many test images.
        batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers:
            see `nasx.data.base.ImageData`.
        corruptions: folder of the official CIFAR-100-C ``.npy`` files (Zenodo 3555552) for
            the corruption tests; ``None`` generates them (`nasx.ood`).
        corruption_cache: folder caching generated corruptions (``None``: no cache).
        corruption_seed: seed of the generated corruptions.
    """

    num_classes = 100
    # GeNAS / NAS-Bench-201's CIFAR-100 normalisation (get_dataset_with_transform.py:180-192)
    mean = (129.3 / 255, 124.1 / 255, 112.4 / 255)
    std = (68.2 / 255, 65.4 / 255, 70.4 / 255)
    name = "CIFAR-100"
    layout = "torchvision's root/cifar-100-python/{train,test,meta}"

    def __init__(
        self,
        *args: Any,
        corruptions: str | None = None,
        corruption_cache: str | None = None,
        corruption_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.corruption_source = CorruptionSource(
            corruptions, corruption_cache, "cifar100", corruption_seed
        )

    def _read(self, root: Path) -> RawImages:
        from torchvision.datasets import CIFAR100

        tr = CIFAR100(str(root), train=True, download=self.download)
        te = CIFAR100(str(root), train=False, download=self.download)
        ti, si = self.pick(len(tr.targets), True), self.pick(len(te.targets), False)
        return RawImages(
            tr.data[ti], np.asarray(tr.targets)[ti], te.data[si], np.asarray(te.targets)[si]
        )
