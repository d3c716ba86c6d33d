"""CIFAR-10 from torchvision's files (with its usual download) or from a nasx/JPEG ``.npz``."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from nasx.data._torchvision_sets import pick_subset
from nasx.data.base import RawImages, TensorImageData
from nasx.errors import NasxError
from nasx.ood.corruptions import CorruptionSource


def _decode_jpegs(blob: np.ndarray, offsets: np.ndarray, idx: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.stack(
        [
            np.asarray(
                Image.open(io.BytesIO(blob[offsets[i] : offsets[i + 1]].tobytes())).convert("RGB")
            )
            for i in idx
        ]
    )


class CIFAR10Data(TensorImageData):
    """CIFAR-10, 50k training and 10k test images.

    ``root`` may be (1) a folder holding torchvision's ``cifar-10-batches-py`` (fetched there
    when ``download=true``), or (2) an ``.npz`` file, or a folder with one, in the JPEG layout
    of ``shared/data/cifar10`` (``train_jpeg``/``train_offsets``/``train_labels`` and ``test_*``).

    Args:
        root: where the data lives (required).
        download: let torchvision download the data into ``root`` when it is not there.
        limit_train: use only this many training images (a fixed random subset), for CPU budgets.
        limit_test: use only this many test images.
        batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers:
            see `nasx.data.base.ImageData`.
        corruptions: folder of the official CIFAR-10-C ``.npy`` files (Zenodo 2535967) for
            the corruption tests; ``None`` generates them (`nasx.ood`).
        corruption_cache: folder caching generated corruptions (``None``: no cache).
        corruption_seed: seed of the generated corruptions.
    """

    num_classes = 10
    # NAS-Bench-201's normalisation
    mean = (125.3 / 255, 123.0 / 255, 113.9 / 255)
    std = (63.0 / 255, 62.1 / 255, 66.7 / 255)

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
        corruptions: str | None = None,
        corruption_cache: str | None = None,
        corruption_seed: int = 0,
    ) -> None:
        super().__init__(
            batch_size, eval_batch_size, valid_fraction, split_seed, augment, num_workers
        )
        self.root, self.download = root, download
        self.limit_train, self.limit_test = limit_train, limit_test
        self.corruption_source = CorruptionSource(
            corruptions, corruption_cache, "cifar10", corruption_seed
        )

    def _pick(self, n: int, limit: int | None, salt: int) -> np.ndarray:
        return pick_subset(n, limit, self.split_seed + salt)

    def _load(self) -> RawImages:
        if not self.root:
            raise NasxError(
                "dataset.root is not set: pass dataset.root=/path/to/cifar10 (torchvision's "
                "files or the nasx .npz), adding dataset.download=true to fetch it there"
            )
        root = Path(self.root).expanduser()
        npz = root if root.suffix == ".npz" else next(iter(sorted(root.glob("*.npz"))), None)
        if npz is not None and npz.is_file():
            return self._load_npz(npz)
        if not root.exists() and not self.download:
            raise NasxError(
                f"dataset.root={root} does not exist: point it at the CIFAR-10 data or add "
                "dataset.download=true"
            )
        from torchvision.datasets import CIFAR10

        try:
            tr = CIFAR10(str(root), train=True, download=self.download)
            te = CIFAR10(str(root), train=False, download=self.download)
        except RuntimeError as exc:
            raise NasxError(
                f"no CIFAR-10 in dataset.root={root} ({exc}): add dataset.download=true or point "
                "the root at torchvision's cifar-10-batches-py or a nasx .npz"
            ) from exc
        ti = self._pick(len(tr.targets), self.limit_train, 11)
        si = self._pick(len(te.targets), self.limit_test, 13)
        self.test_indices = si
        return RawImages(
            tr.data[ti], np.asarray(tr.targets)[ti], te.data[si], np.asarray(te.targets)[si]
        )

    def _load_npz(self, path: Path) -> RawImages:
        try:
            d = np.load(path)
            out = []
            for split, limit, salt in (
                ("train", self.limit_train, 11),
                ("test", self.limit_test, 13),
            ):
                labels = d[f"{split}_labels"].astype(np.int64)
                idx = self._pick(len(labels), limit, salt)
                if split == "test":
                    self.test_indices = idx
                out.append(_decode_jpegs(d[f"{split}_jpeg"], d[f"{split}_offsets"], idx))
                out.append(labels[idx])
        except (KeyError, ValueError, OSError) as exc:
            raise NasxError(
                f"{path} is not a CIFAR-10 npz in the nasx JPEG layout ({exc}): point "
                "dataset.root at torchvision's files instead"
            ) from exc
        return RawImages(out[0], out[1], out[2], out[3])
