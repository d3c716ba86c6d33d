"""The dataset contract (`ImageData`) and the in-memory form most datasets take (`TensorImageData`).

A dataset gives loaders over a fixed train/valid/test split; `TensorImageData` holds every
image as a normalised tensor (CIFAR, digits, synthetic data), `nasx.data.folder` streams
image folders too large for memory (ImageNet).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import v2

if TYPE_CHECKING:
    from nasx.ood.corruptions import CorruptionSource


@dataclass(frozen=True)
class RawImages:
    """Images as uint8 ``(N, H, W, C)`` arrays with integer labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


class _TensorImages(Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, augment: v2.Transform | None) -> None:
        self.x, self.y, self.augment = x, y, augment

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.x[i]
        return (self.augment(x) if self.augment is not None else x), int(self.y[i])


class EpochSeededSampler(Sampler[int]):
    """A random permutation per epoch, fixed by ``(seed, epoch)``.

    Lightning calls `set_epoch` before every epoch, so a run resumed from a checkpoint at
    epoch k shuffles epoch k exactly as the uninterrupted run did (a generator-backed
    ``RandomSampler`` would restart its stream from epoch 0).

    Under ``torch.distributed`` (DDP) process r of N yields every N-th index of the same
    permutation from the r-th on (the tail cut to a multiple of N), so with a per-process batch
    of B / N the processes' k-th batches together are the k-th batch of B one process reads.
    Lightning must then leave the sampler unwrapped (``use_distributed_sampler=False``, as
    `nasx.stages.context.RunContext.trainer` sets), or the shards are sharded again.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        _, world = _rank_and_world()
        return self.n // world

    def __iter__(self) -> Iterator[int]:
        state = np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]
        gen = torch.Generator().manual_seed(int(state))
        self.epoch += 1  # plain loops that never call set_epoch still reshuffle
        order = torch.randperm(self.n, generator=gen).tolist()
        rank, world = _rank_and_world()
        if world > 1:
            order = order[: self.n - self.n % world][rank::world]
        return iter(order)


def _rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size under ``torch.distributed`` (else ``(0, 1)``)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ImageData(ABC):
    """Base class of every ``dataset=`` option: a fixed split and its loaders.

    Args:
        batch_size: training batch size (64 in GeNAS/RLNAS).
        eval_batch_size: batch size for metrics, recalibration and testing.
        valid_fraction: share of the training images held out as the valid split; 0 trains on
            every training image and leaves the valid split empty (RLNAS: the angle metric
            needs no valid data).
        split_seed: seed of the train/valid permutation; fixed so every run sees the same split.
        augment: augment training images (in-memory data: random crop with padding and flip).
        num_workers: DataLoader worker processes.
    """

    num_classes: int
    #: positions of the test split's images in the full test set (``None``: all, in order);
    #: set by datasets that draw a ``limit_test`` subset, read by the OOD evaluation
    test_indices: np.ndarray | None = None
    #: where corrupted copies of the test images come from (`nasx.ood.CorruptionSource` on
    #: CIFAR-10/100, ``None`` on datasets without a corruption benchmark)
    corruption_source: CorruptionSource | None = None

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int = 64,
        valid_fraction: float = 0.5,
        split_seed: int = 0,
        augment: bool = False,
        num_workers: int = 0,
    ) -> None:
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError("dataset.batch_size and dataset.eval_batch_size must be >= 1")
        if not 0.0 <= valid_fraction < 1.0:
            raise ValueError(f"dataset.valid_fraction must be in [0, 1), got {valid_fraction}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.valid_fraction = valid_fraction
        self.split_seed = split_seed
        self.augment = augment
        self.num_workers = num_workers

    @abstractmethod
    def setup(self, image_size: int, in_channels: int) -> None:
        """Prepare the splits for a space's input size and channels; idempotent."""

    @abstractmethod
    def split(self, name: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``limit`` images of a split as evaluation tensors ``(images, labels)``.

        ``name`` is ``train``, ``valid`` or ``test``; ``None`` takes all. Call `setup` first.
        """

    @abstractmethod
    def train_size(self) -> int:
        """Images in the train split."""

    @abstractmethod
    def train_loader(self, seed: int, labels: torch.Tensor | None = None) -> DataLoader:
        """Augmented training batches shuffled by ``(seed, epoch)`` (`EpochSeededSampler`).

        ``labels`` replaces the real labels (RLNAS).
        """

    @abstractmethod
    def eval_loader(self, name: str, limit: int | None = None) -> DataLoader:
        """Unshuffled, unaugmented batches of a split, optionally its first ``limit`` images."""

    def random_labels(self, seed: int) -> torch.Tensor:
        """RLNAS labels: one uniform label per training image, fixed by ``seed``."""
        n = self.train_size()
        return torch.as_tensor(np.random.default_rng(seed).integers(0, self.num_classes, n))


class TensorImageData(ImageData):
    """A dataset held in memory as normalised tensors.

    Subclasses implement `_load` (raw uint8 images) and set `num_classes`, `mean` and `std`.
    This class normalises, resizes to the search space's input size, splits the training
    images into a train and a valid part with a fixed ``split_seed`` (GeNAS ``split_data``),
    and augments with a random crop (padding 1/8 of the size) and a horizontal flip.
    Arguments: see `ImageData`.
    """

    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __init__(
        self,
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
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @abstractmethod
    def _load(self) -> RawImages:
        """Read the raw images; raise `nasx.errors.NasxError` when the data is missing."""

    def setup(self, image_size: int, in_channels: int) -> None:
        """Load, normalise and resize once; idempotent."""
        if self._splits:
            return
        raw = self._load()
        perm = np.random.default_rng(self.split_seed).permutation(len(raw.train_y))
        n_valid = int(round(len(perm) * self.valid_fraction))
        tr, va = np.sort(perm[n_valid:]), np.sort(perm[:n_valid])
        prep = self._prepare
        self._splits = {
            "train": (
                prep(raw.train_x[tr], image_size, in_channels),
                torch.as_tensor(raw.train_y[tr]).long(),
            ),
            "valid": (
                prep(raw.train_x[va], image_size, in_channels),
                torch.as_tensor(raw.train_y[va]).long(),
            ),
            "test": (prep(raw.test_x, image_size, in_channels), torch.as_tensor(raw.test_y).long()),
        }
        self.image_size = image_size

    def _prepare(self, x: np.ndarray, image_size: int, in_channels: int) -> torch.Tensor:
        t = torch.as_tensor(x).permute(0, 3, 1, 2).float() / 255.0
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        t = (t - mean) / std
        if t.shape[-1] != image_size:
            t = F.interpolate(
                t, size=(image_size, image_size), mode="bilinear", align_corners=False
            )
        if t.shape[1] != in_channels:
            if t.shape[1] != 1:
                raise ValueError(f"cannot map {t.shape[1]} image channels to {in_channels}")
            t = t.expand(-1, in_channels, -1, -1)
        return t.contiguous()

    def split(self, name: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._splits:
            raise RuntimeError("call setup(image_size, in_channels) first")
        x, y = self._splits[name]
        return (x, y) if limit is None else (x[:limit], y[:limit])

    def train_size(self) -> int:
        return len(self.split("train")[1])

    def train_loader(self, seed: int, labels: torch.Tensor | None = None) -> DataLoader:
        x, y = self.split("train")
        aug = None
        if self.augment:
            pad = max(1, self.image_size // 8)
            aug = v2.Compose(
                [v2.RandomCrop(self.image_size, padding=pad), v2.RandomHorizontalFlip()]
            )
        ds = _TensorImages(x, y if labels is None else labels, aug)
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=EpochSeededSampler(len(ds), seed),
            num_workers=self.num_workers,
            drop_last=len(ds) > self.batch_size,
        )

    def eval_loader(self, name: str, limit: int | None = None) -> DataLoader:
        x, y = self.split(name, limit)
        return DataLoader(
            _TensorImages(x, y, None),
            batch_size=self.eval_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
        )
