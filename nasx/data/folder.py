"""Image folders read from disk batch by batch: ImageNet's layout and any ``train/`` + ``val/``.

ImageNet does not fit in memory, so these datasets stream: torchvision's ``ImageFolder``
decodes each image when a loader asks for it, with the usual ImageNet transforms
(``RandomResizedCrop`` + flip for training; resize to 1/0.875 of the input and centre crop for
evaluation). Only what a metric evaluates many times (the first ``limit`` images of a split,
`split`) is decoded once and kept as a tensor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets
from torchvision.transforms import v2

from nasx.data.base import EpochSeededSampler, ImageData
from nasx.errors import NasxError

#: ImageNet's per-channel statistics (torchvision's models)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_transforms(
    image_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    resize_ratio: float,
    augment: bool,
) -> tuple[v2.Transform, v2.Transform]:
    """``(train, evaluate)`` transforms of PIL images, the ImageNet convention.

    Evaluation resizes the short side to ``image_size / resize_ratio`` and centre-crops;
    training (``augment``) takes a ``RandomResizedCrop`` (scale 0.08-1) and a horizontal flip.
    """
    norm = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    resize = int(round(image_size / resize_ratio))
    evaluate = v2.Compose([v2.Resize(resize, antialias=True), v2.CenterCrop(image_size), *norm])
    if not augment:
        return evaluate, evaluate
    train = v2.Compose(
        [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip(), *norm]
    )
    return train, evaluate


class _Relabelled(Dataset[tuple[torch.Tensor, int]]):
    """A dataset whose labels are replaced (RLNAS random labels)."""

    def __init__(self, base: Dataset[Any], labels: torch.Tensor) -> None:
        self.base, self.labels = base, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, _ = self.base[i]
        return x, int(self.labels[i])


class ImageFolderData(ImageData):
    """A ``root/train/<class>/*`` and ``root/val/<class>/*`` tree (ImageNet's layout).

    The valid split is ``valid_fraction`` of the training images (fixed by ``split_seed``);
    ``test`` is ``root/val``, as ImageNet papers report. Classes are the sorted folder names
    (torchvision ``ImageFolder``); their number must equal ``num_classes``, which sizes the
    networks before any file is read.

    Args:
        root: the folder holding ``train/`` and ``val/``.
        num_classes: class folders expected (ImageNet: 1000).
        resize_ratio: evaluation images are resized to ``image_size / resize_ratio`` and
            centre-cropped (0.875: 256 -> 224, the ImageNet convention).
        batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers:
            see `ImageData`; ``augment`` switches RandomResizedCrop + flip on.
    """

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(
        self,
        root: str | None = None,
        num_classes: int = 1000,
        resize_ratio: float = 0.875,
        batch_size: int = 64,
        eval_batch_size: int = 64,
        valid_fraction: float = 0.0,
        split_seed: int = 0,
        augment: bool = True,
        num_workers: int = 4,
    ) -> None:
        super().__init__(
            batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers
        )
        if num_classes < 2:
            raise ValueError(f"dataset.num_classes must be >= 2, got {num_classes}")
        if not 0.0 < resize_ratio <= 1.0:
            raise ValueError(f"dataset.resize_ratio must be in (0, 1], got {resize_ratio}")
        self.root = root
        self.num_classes = num_classes
        self.resize_ratio = resize_ratio
        self._sets: dict[str, tuple[Dataset[Any], Dataset[Any]]] = {}
        self._cached: dict[tuple[str, int | None], tuple[torch.Tensor, torch.Tensor]] = {}

    def _folder(self, name: str) -> Path:
        if self.root is None:
            raise NasxError(
                "dataset.root is not set: pass dataset.root=<folder with train/ and val/ "
                "holding one sub-folder of images per class>"
            )
        path = Path(self.root).expanduser() / name
        if not path.is_dir():
            raise NasxError(
                f"{path} does not exist: dataset.root must hold train/<class>/<image> and "
                "val/<class>/<image> (ImageNet's layout; move val images into class folders)"
            )
        return path

    def setup(self, image_size: int, in_channels: int) -> None:
        """Index both folders and build the transforms for ``image_size``; idempotent."""
        if self._sets:
            return
        if in_channels != 3:
            raise NasxError(
                f"image folders are RGB: the space must take 3 channels, not {in_channels}"
            )
        train_tf, evaluate = build_transforms(
            image_size, self.mean, self.std, self.resize_ratio, self.augment
        )
        train_dir, val_dir = self._folder("train"), self._folder("val")
        try:
            train_aug = datasets.ImageFolder(str(train_dir), transform=train_tf)
            train_eval = datasets.ImageFolder(str(train_dir), transform=evaluate)
            test = datasets.ImageFolder(str(val_dir), transform=evaluate)
        except (FileNotFoundError, RuntimeError) as exc:
            raise NasxError(f"cannot read the image folders under {self.root}: {exc}") from exc
        for name, ds in (("train", train_aug), ("val", test)):
            if len(ds.classes) != self.num_classes:
                raise NasxError(
                    f"{train_dir.parent / name} holds {len(ds.classes)} class folders but "
                    f"dataset.num_classes={self.num_classes}: set it to {len(ds.classes)}"
                )
        perm = np.random.default_rng(self.split_seed).permutation(len(train_aug))
        n_valid = int(round(len(perm) * self.valid_fraction))
        tr, va = np.sort(perm[n_valid:]).tolist(), np.sort(perm[:n_valid]).tolist()
        self._sets = {
            "train": (Subset(train_aug, tr), Subset(train_eval, tr)),
            "valid": (Subset(train_eval, va), Subset(train_eval, va)),
            "test": (test, test),
        }
        self.image_size = image_size

    def _eval_set(self, name: str) -> Dataset[Any]:
        if not self._sets:
            raise RuntimeError("call setup(image_size, in_channels) first")
        return self._sets[name][1]

    def split(self, name: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``limit`` images of a split, decoded once and kept (``None``: all)."""
        key = (name, limit)
        if key not in self._cached:
            xs, ys = [], []
            for x, y in self.eval_loader(name, limit):
                xs.append(x)
                ys.append(y)
            size = self.image_size
            self._cached[key] = (
                torch.cat(xs) if xs else torch.zeros(0, 3, size, size),
                torch.cat(ys) if ys else torch.zeros(0, dtype=torch.long),
            )
        return self._cached[key]

    def train_size(self) -> int:
        """Images in the train split."""
        if not self._sets:
            raise RuntimeError("call setup(image_size, in_channels) first")
        return len(self._sets["train"][0])  # type: ignore[arg-type]

    def train_loader(self, seed: int, labels: torch.Tensor | None = None) -> DataLoader:
        """Shuffled, augmented batches decoded as read; ``labels`` replaces the real ones."""
        if not self._sets:
            raise RuntimeError("call setup(image_size, in_channels) first")
        ds: Dataset[Any] = self._sets["train"][0]
        if labels is not None:
            ds = _Relabelled(ds, labels)
        n = self.train_size()
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=EpochSeededSampler(n, seed),
            num_workers=self.num_workers,
            drop_last=n > self.batch_size,
            persistent_workers=self.num_workers > 0,
        )

    def eval_loader(self, name: str, limit: int | None = None) -> DataLoader:
        """Unshuffled evaluation batches of a split (``test``: ``val/``), the first ``limit``."""
        ds = self._eval_set(name)
        if limit is not None and limit < len(ds):  # type: ignore[arg-type]
            ds = Subset(ds, list(range(limit)))
        return DataLoader(
            ds, batch_size=self.eval_batch_size, shuffle=False, num_workers=self.num_workers
        )
