"""NSGANetV2's transfer datasets read through torchvision: Flowers102, Aircraft, Pets, DTD.

These are streamed from disk like ImageNet (`ImageFolderData`), not held in memory like
CIFAR, although they are small (3.7k-10k images), because:

- their images are large photographs of varying size and aspect ratio (Flowers102 about
  500x600, Aircraft up to 1600x1200). NSGANetV2 serves them at 192-256 px with
  ``RandomResizedCrop`` for training and ``Resize(r / 0.875) + CenterCrop(r)`` for evaluation
  (``codebase/data_providers/*.py``). Both need the original image; a tensor squashed to a
  square at setup time could give neither;
- as float tensors at 224 px they would take 0.6 MB an image: 6 GB for Aircraft, 5 GB for
  Flowers102, where streaming needs none, and a setup that decodes nothing up front.

What a metric evaluates many times (the first ``limit`` images of a split) is decoded once
and kept, as `ImageFolderData.split` does. The training images are each dataset's official
train and val splits together, as NSGANetV2 trains on them (its README's table: Flowers102
2,040, Aircraft 6,667, DTD 3,760, Pets 3,680 training images); ``valid_fraction`` of them is
held out as the valid split, and the official test split is the test split. NSGANetV2's extra
training augmentations (RandAugment for Aircraft/DTD/Pets, RandomAffine and a class-balanced
sampler for Flowers102) are not reproduced: ``augment`` is RandomResizedCrop + flip.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset
from torchvision.transforms import v2

from nasx.data._torchvision_sets import download_hint, read_errors
from nasx.data.folder import ImageFolderData, build_transforms
from nasx.errors import NasxError


class _Transformed(Dataset[tuple[torch.Tensor, int]]):
    """A dataset of ``(PIL image, label)`` pairs with a transform applied to the image."""

    def __init__(self, base: Dataset[Any], transform: v2.Transform) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, label = self.base[i]
        return self.transform(image), int(label)


class TorchvisionFolderData(ImageFolderData):
    """A torchvision image dataset streamed with the ImageNet transforms (see the module).

    Subclasses set `num_classes`, `mean`, `std`, `name` and `layout` (the files under
    ``root``, for messages), and implement `_split_names` and `_open`.

    Args:
        root: the folder torchvision's class reads (required; read only in `setup`).
        download: let torchvision download the data into ``root`` when it is not there.
        resize_ratio: evaluation images are resized to ``image_size / resize_ratio`` and
            centre-cropped (0.875, NSGANetV2's ``Resize(ceil(r / 0.875)) + CenterCrop(r)``).
        batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers:
            see `nasx.data.base.ImageData`; ``augment`` switches RandomResizedCrop + flip on.
    """

    num_classes: int
    name: str
    layout: str

    def __init__(
        self,
        root: str | None = None,
        download: bool = False,
        resize_ratio: float = 0.875,
        batch_size: int = 64,
        eval_batch_size: int = 64,
        valid_fraction: float = 0.5,
        split_seed: int = 0,
        augment: bool = True,
        num_workers: int = 4,
    ) -> None:
        super().__init__(
            root,
            type(self).num_classes,
            resize_ratio,
            batch_size,
            eval_batch_size,
            valid_fraction,
            split_seed,
            augment,
            num_workers,
        )
        self.download = download

    @abstractmethod
    def _split_names(self) -> tuple[list[str], str]:
        """The torchvision split names: those joined into the training images, and the test one."""

    @abstractmethod
    def _open(self, root: str, split: str) -> Dataset[Any]:
        """The torchvision dataset of one split, yielding ``(PIL image, label)``."""

    def _root(self) -> Path:
        if not self.root:
            raise NasxError(
                f"dataset.root is not set: pass dataset.root=<dir> holding {self.name} "
                f"({self.layout}), adding dataset.download=true to fetch it there"
            )
        root = Path(self.root).expanduser()
        if not root.exists() and not self.download:
            raise NasxError(
                f"dataset.root={root} does not exist: point it at the {self.name} data "
                f"({self.layout}) or add dataset.download=true"
            )
        return root

    def _open_all(self, root: Path) -> tuple[Dataset[Any], Dataset[Any]]:
        train_names, test_name = self._split_names()
        try:
            parts = {s: self._open(str(root), s) for s in [*train_names, test_name]}
        except read_errors() as exc:
            raise NasxError(
                f"no readable {self.name} in dataset.root={root} ({type(exc).__name__}: {exc}): "
                f"expected {self.layout}{download_hint(self.download)}"
            ) from exc
        classes = {split: list(getattr(ds, "classes", [])) for split, ds in parts.items()}
        for split, names in classes.items():
            if len(names) != self.num_classes:
                raise NasxError(
                    f"{self.name}'s {split} split in dataset.root={root} has {len(names)} "
                    f"classes, not {self.num_classes}: is the copy complete?"
                )
        if any(names != classes[test_name] for names in classes.values()):
            raise NasxError(
                f"{self.name}'s splits in dataset.root={root} name different classes, so their "
                "labels would not agree: is the copy complete?"
            )
        train = [parts[s] for s in train_names]
        return (train[0] if len(train) == 1 else ConcatDataset(train)), parts[test_name]

    def setup(self, image_size: int, in_channels: int) -> None:
        """Index the splits and build the transforms for ``image_size``; idempotent."""
        if self._sets:
            return
        if in_channels != 3:
            raise NasxError(
                f"{self.name} is RGB: the space must take 3 channels, not {in_channels}"
            )
        train_tf, eval_tf = build_transforms(
            image_size, self.mean, self.std, self.resize_ratio, self.augment
        )
        train, test = self._open_all(self._root())
        train_aug, train_eval = _Transformed(train, train_tf), _Transformed(train, eval_tf)
        perm = np.random.default_rng(self.split_seed).permutation(len(train_eval))
        n_valid = int(round(len(perm) * self.valid_fraction))
        tr, va = np.sort(perm[n_valid:]).tolist(), np.sort(perm[:n_valid]).tolist()
        test_eval = _Transformed(test, eval_tf)
        self._sets = {
            "train": (Subset(train_aug, tr), Subset(train_eval, tr)),
            "valid": (Subset(train_eval, va), Subset(train_eval, va)),
            "test": (test_eval, test_eval),
        }
        self.image_size = image_size


class Flowers102Data(TorchvisionFolderData):
    """Oxford 102 Flowers: 1,020 train + 1,020 val and 6,149 test images, 102 classes.

    Read through torchvision's ``Flowers102`` (``root/flowers-102/``: ``jpg/``,
    ``imagelabels.mat``, ``setid.mat``; labels 1-102 mapped to 0-101).

    Args:
        root: the folder holding ``flowers-102/`` (required).
        download: let torchvision download the data into ``root`` when it is not there.
        trainval: train on the official train and val splits together (NSGANetV2: 2,040
            images) rather than on train alone.
        resize_ratio, batch_size, eval_batch_size, valid_fraction, split_seed, augment,
            num_workers: see `TorchvisionFolderData`.
    """

    num_classes = 102
    # NSGANetV2's Flowers102 normalisation (codebase/data_providers/flowers102.py)
    mean = (0.5178361839861569, 0.4106749456881299, 0.32864167836880803)
    std = (0.2972239085211309, 0.24976049135203868, 0.28533308036347665)
    name = "Flowers102"
    layout = "torchvision's root/flowers-102/{jpg/image_*.jpg,imagelabels.mat,setid.mat}"

    def __init__(
        self,
        root: str | None = None,
        download: bool = False,
        trainval: bool = True,
        resize_ratio: float = 0.875,
        batch_size: int = 64,
        eval_batch_size: int = 64,
        valid_fraction: float = 0.5,
        split_seed: int = 0,
        augment: bool = True,
        num_workers: int = 4,
    ) -> None:
        super().__init__(
            root,
            download,
            resize_ratio,
            batch_size,
            eval_batch_size,
            valid_fraction,
            split_seed,
            augment,
            num_workers,
        )
        self.trainval = trainval

    def _split_names(self) -> tuple[list[str], str]:
        return (["train", "val"] if self.trainval else ["train"]), "test"

    def _open(self, root: str, split: str) -> Dataset[Any]:
        from torchvision.datasets import Flowers102

        return Flowers102(root, split=split, download=self.download)


class FGVCAircraftData(TorchvisionFolderData):
    """FGVC Aircraft: 6,667 trainval and 3,333 test images, 100 variants.

    Read through torchvision's ``FGVCAircraft`` at the ``variant`` level
    (``root/fgvc-aircraft-2013b/data/``: ``variants.txt``, ``images_variant_<split>.txt``,
    ``images/*.jpg``).

    Args:
        root: the folder holding ``fgvc-aircraft-2013b/`` (required).
        download: let torchvision download the data into ``root`` when it is not there.
        trainval: train on the official ``trainval`` split (NSGANetV2: 6,667 images) rather
            than on ``train`` alone.
        resize_ratio, batch_size, eval_batch_size, valid_fraction, split_seed, augment,
            num_workers: see `TorchvisionFolderData`.
    """

    num_classes = 100
    # NSGANetV2's Aircraft normalisation (codebase/data_providers/aircraft.py)
    mean = (0.48933587508932375, 0.5183537408957618, 0.5387914411673883)
    std = (0.22388883112804625, 0.21641635409388751, 0.24615605842636115)
    name = "FGVC Aircraft"
    layout = (
        "torchvision's root/fgvc-aircraft-2013b/data/{variants.txt,"
        "images_variant_{trainval,test}.txt,images/*.jpg}"
    )

    def __init__(
        self,
        root: str | None = None,
        download: bool = False,
        trainval: bool = True,
        resize_ratio: float = 0.875,
        batch_size: int = 64,
        eval_batch_size: int = 64,
        valid_fraction: float = 0.5,
        split_seed: int = 0,
        augment: bool = True,
        num_workers: int = 4,
    ) -> None:
        super().__init__(
            root,
            download,
            resize_ratio,
            batch_size,
            eval_batch_size,
            valid_fraction,
            split_seed,
            augment,
            num_workers,
        )
        self.trainval = trainval

    def _split_names(self) -> tuple[list[str], str]:
        return (["trainval"] if self.trainval else ["train"]), "test"

    def _open(self, root: str, split: str) -> Dataset[Any]:
        from torchvision.datasets import FGVCAircraft

        return FGVCAircraft(root, split=split, annotation_level="variant", download=self.download)


class OxfordPetsData(TorchvisionFolderData):
    """Oxford-IIIT Pets: 3,680 trainval and 3,669 test images, 37 breeds (category labels).

    Read through torchvision's ``OxfordIIITPet`` with ``target_types='category'``
    (``root/oxford-iiit-pet/``: ``images/*.jpg``, ``annotations/{trainval,test}.txt``).
    The dataset has no separate val split: the training images are ``trainval``.

    Args:
        root: the folder holding ``oxford-iiit-pet/`` (required).
        download: let torchvision download the data into ``root`` when it is not there.
        resize_ratio, batch_size, eval_batch_size, valid_fraction, split_seed, augment,
            num_workers: see `TorchvisionFolderData`.
    """

    num_classes = 37
    # NSGANetV2's Pets normalisation (codebase/data_providers/pets.py)
    mean = (0.4828895122298728, 0.4448394893850807, 0.39566558230789783)
    std = (0.25925664613996574, 0.2532760018681693, 0.25981017205097917)
    name = "Oxford-IIIT Pets"
    layout = "torchvision's root/oxford-iiit-pet/{images/*.jpg,annotations/{trainval,test}.txt}"

    def _split_names(self) -> tuple[list[str], str]:
        return ["trainval"], "test"

    def _open(self, root: str, split: str) -> Dataset[Any]:
        from torchvision.datasets import OxfordIIITPet

        return OxfordIIITPet(root, split=split, target_types="category", download=self.download)


class DTDData(TorchvisionFolderData):
    """Describable Textures: 1,880 images per split (train, val, test), 47 classes.

    Read through torchvision's ``DTD`` (``root/dtd/dtd/``: ``images/<class>/*.jpg``,
    ``labels/{train,val,test}<partition>.txt``).

    Args:
        root: the folder holding ``dtd/`` (required).
        download: let torchvision download the data into ``root`` when it is not there.
        trainval: train on the official train and val splits together (NSGANetV2: 3,760
            images) rather than on train alone.
        partition: which of DTD's 10 official splits (1-10).
        resize_ratio, batch_size, eval_batch_size, valid_fraction, split_seed, augment,
            num_workers: see `TorchvisionFolderData`.
    """

    num_classes = 47
    # NSGANetV2's DTD normalisation (codebase/data_providers/dtd.py)
    mean = (0.5329876098715876, 0.474260843249454, 0.42627281899380676)
    std = (0.26549755708788914, 0.25473554309855373, 0.2631728035662832)
    name = "DTD"
    layout = "torchvision's root/dtd/dtd/{images/<class>/*.jpg,labels/<split><partition>.txt}"

    def __init__(
        self,
        root: str | None = None,
        download: bool = False,
        trainval: bool = True,
        partition: int = 1,
        resize_ratio: float = 0.875,
        batch_size: int = 64,
        eval_batch_size: int = 64,
        valid_fraction: float = 0.5,
        split_seed: int = 0,
        augment: bool = True,
        num_workers: int = 4,
    ) -> None:
        super().__init__(
            root,
            download,
            resize_ratio,
            batch_size,
            eval_batch_size,
            valid_fraction,
            split_seed,
            augment,
            num_workers,
        )
        if not 1 <= partition <= 10:
            raise ValueError(f"dataset.partition must be in 1..10, got {partition}")
        self.trainval, self.partition = trainval, partition

    def _split_names(self) -> tuple[list[str], str]:
        return (["train", "val"] if self.trainval else ["train"]), "test"

    def _open(self, root: str, split: str) -> Dataset[Any]:
        from torchvision.datasets import DTD

        return DTD(root, split=split, partition=self.partition, download=self.download)
