"""CINIC-10 (CIFAR-10 plus downsampled ImageNet, 32 px) from its class-folder layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nasx.data._torchvision_sets import DiskTensorData
from nasx.data.base import RawImages

#: where the CINIC-10 README (BayesWatch/cinic-10) says to fetch the archive
CINIC10_URL = "https://datashare.is.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz"


def _index(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    from torchvision.datasets import ImageFolder

    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    ds = ImageFolder(str(folder))
    return ds.classes, ds.samples


def _decode(paths: list[str]) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(paths), 32, 32, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        with Image.open(p) as img:
            pixels = np.asarray(img.convert("RGB"))
        if pixels.shape != (32, 32, 3):
            raise ValueError(f"{p} is {pixels.shape[1]}x{pixels.shape[0]} px, not 32x32")
        out[i] = pixels
    return out


class CINIC10Data(DiskTensorData):
    """CINIC-10: 90k images per split (train, valid, test) of 32 px in CIFAR-10's 10 classes.

    The layout is the archive's: ``root/{train,valid,test}/<class>/*.png``; classes are the
    sorted folder names (torchvision ``ImageFolder``: airplane ... truck, CIFAR-10's order).
    With ``trainval`` (NSGANetV2, which trains on ``train_and_valid``: 180k images) the
    training images are ``train/`` and ``valid/`` together; otherwise ``train/`` only (CNAS).
    ``valid_fraction`` of them is held out as the valid split; ``test/`` is the test split.
    The PNGs are decoded once into memory (only the ``limit_*`` subsets when set), like
    CIFAR-10: 270k images take about 3.3 GB as float tensors at 32 px.

    torchvision has no CINIC-10 downloader: fetch `CINIC10_URL` and unpack it into ``root``.

    Args:
        root: the folder holding ``train/``, ``valid/`` and ``test/`` (required).
        download: accepted for a uniform interface; torchvision cannot download CINIC-10, so
            missing data is an error that names the archive to fetch.
        trainval: train on ``train/`` + ``valid/`` (NSGANetV2) rather than ``train/`` alone.
        limit_train: use only this many training images (a fixed random subset), for CPU budgets.
        limit_test: use only this many test images.
        batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers:
            see `nasx.data.base.ImageData`.
    """

    num_classes = 10
    # CINIC-10's statistics (BayesWatch/cinic-10 README; NSGANetV2 and CNAS use them too)
    mean = (0.47889522, 0.47227842, 0.43047404)
    std = (0.24205776, 0.23828046, 0.25874835)
    name = "CINIC-10"
    layout = "root/train/<class>/*.png, root/valid/<class>/*.png and root/test/<class>/*.png"
    downloadable = False
    fetch = f"torchvision cannot download CINIC-10: fetch {CINIC10_URL} and unpack it there"

    def __init__(
        self,
        root: str | None = None,
        download: bool = False,
        trainval: bool = True,
        limit_train: int | None = None,
        limit_test: int | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 64,
        valid_fraction: float = 0.5,
        split_seed: int = 0,
        augment: bool = True,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            root,
            download,
            limit_train,
            limit_test,
            batch_size,
            eval_batch_size,
            valid_fraction,
            split_seed,
            augment,
            num_workers,
        )
        self.trainval = trainval

    def _read(self, root: Path) -> RawImages:
        folders = ["train", "valid"] if self.trainval else ["train"]
        index = {name: _index(root / name) for name in [*folders, "test"]}
        for name, (classes, _) in index.items():
            if len(classes) != self.num_classes or classes != index["test"][0]:
                raise ValueError(
                    f"{root / name} holds the class folders {classes}: CINIC-10 has the same "
                    "10 in each split"
                )
        train = [s for name in folders for s in index[name][1]]
        test = index["test"][1]
        ti, si = self.pick(len(train), True), self.pick(len(test), False)
        return RawImages(
            _decode([train[i][0] for i in ti]),
            np.array([train[i][1] for i in ti], dtype=np.int64),
            _decode([test[i][0] for i in si]),
            np.array([test[i][1] for i in si], dtype=np.int64),
        )
