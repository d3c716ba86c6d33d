"""Shared steps of the in-memory datasets read from files (CIFAR-100, SVHN, STL-10, CINIC-10).

The root checks and their error messages, fixed random subsets for CPU budgets, and turning
a reader's failure into one `NasxError`. CIFAR-10 (`nasx.data.cifar10`) follows the same
path with its own copy of these steps; the others subclass `DiskTensorData`.
"""

from __future__ import annotations

import pickle
from abc import abstractmethod
from pathlib import Path

import numpy as np

from nasx.data.base import RawImages, TensorImageData
from nasx.errors import NasxError

#: what a reader raises on missing, truncated or foreign files (torchvision raises
#: ``RuntimeError("Dataset not found or corrupted")``, a failed download an ``OSError``,
#: a parser a ``LookupError`` / ``ValueError``)
_READ_ERRORS = (RuntimeError, OSError, LookupError, ValueError, EOFError, pickle.UnpicklingError)
#: salts of the train/test subset seeds (CIFAR-10's, so ``limit_*`` picks alike)
TRAIN_SALT, TEST_SALT = 11, 13


def read_errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean "these files are missing or malformed", scipy's included."""
    from scipy.io.matlab import MatReadError  # .mat files: SVHN, Flowers102

    return (*_READ_ERRORS, MatReadError)


def download_hint(download: bool) -> str:
    """What to do when torchvision could not read (or fetch) the files."""
    if download:
        return "; the download failed: check the connection or put the files there by hand"
    return "; add dataset.download=true to fetch it"


def pick_subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a fixed random subset of ``limit`` of ``n`` items (all if ``None``)."""
    if limit is None or limit >= n:
        return np.arange(n)
    if limit < 1:
        raise ValueError(f"dataset.limit_train / limit_test must be >= 1, got {limit}")
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


class DiskTensorData(TensorImageData):
    """An in-memory dataset read once from files under ``root``.

    Subclasses set `name` (for messages), `layout` (the expected files, relative to
    ``root``), `downloadable` (whether torchvision can fetch the files; if not, `fetch` says
    how to get them) and implement `_read`.
    This class checks ``root``, turns a reader's failure into a `NasxError` that names the
    layout and the fix, and draws the ``limit_*`` subsets (`pick`).

    Args:
        root: where the data lives (required; read only in `setup`, never in the constructor).
        download: let torchvision download the data into ``root`` when it is not there.
        limit_train: use only this many training images (a fixed random subset), for CPU budgets.
        limit_test: use only this many test images.
        batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers:
            see `nasx.data.base.ImageData`.
    """

    name: str
    layout: str
    downloadable: bool = True
    #: how to get the data when torchvision cannot download it
    fetch: str = ""

    def __init__(
        self,
        root: str | None = None,
        download: bool = False,
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
            batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers
        )
        self.root, self.download = root, download
        self.limit_train, self.limit_test = limit_train, limit_test

    @abstractmethod
    def _read(self, root: Path) -> RawImages:
        """Read (downloading first if asked) the raw images under ``root``, subset by `pick`."""

    def pick(self, n: int, train: bool) -> np.ndarray:
        """The indices of the ``limit_train`` (or ``limit_test``) subset of ``n`` images."""
        limit, salt = (self.limit_train, TRAIN_SALT) if train else (self.limit_test, TEST_SALT)
        idx = pick_subset(n, limit, self.split_seed + salt)
        if not train:
            self.test_indices = idx
        return idx

    def _hint(self, downloading: str) -> str:
        return downloading if self.downloadable else f"; {self.fetch}"

    def _load(self) -> RawImages:
        if not self.root:
            raise NasxError(
                f"dataset.root is not set: pass dataset.root=<dir> holding {self.name} "
                f"({self.layout})" + self._hint(", adding dataset.download=true to fetch it there")
            )
        root = Path(self.root).expanduser()
        if not root.exists() and not (self.download and self.downloadable):
            raise NasxError(
                f"dataset.root={root} does not exist: point it at the {self.name} data "
                f"({self.layout})" + self._hint(" or add dataset.download=true")
            )
        try:
            return self._read(root)
        except read_errors() as exc:
            raise NasxError(
                f"no readable {self.name} in dataset.root={root} ({type(exc).__name__}: {exc}): "
                f"expected {self.layout}" + self._hint(download_hint(self.download))
            ) from exc
