"""CIFAR-10-C / CIFAR-100-C corrupted test images: read from the official files or generated.

The 15 corruptions of Hendrycks & Dietterich (ICLR 2019) at severities 1-5, with the constants
of their CIFAR script ``ImageNet-C/create_c/make_cifar_c.py`` (``hendrycks/robustness``, commit
ca36008), not ImageNet-C's (``make_imagenet_c.py``, which ``imagecorruptions`` copies): e.g.
``gaussian_noise`` uses noise std 0.04-0.10 on CIFAR and 0.08-0.38 on ImageNet.

Two sources, recorded in every `CorruptedImages`:

* ``official``: ``<dir>/<corruption>.npy`` of shape ``(5 n, 32, 32, 3)`` uint8 (severity 1's
  n test images first, in test-set order) plus ``<dir>/labels.npy``, as published;
* ``generated:imagecorruptions-imaug <version>``: computed from the clean test images with a
  NumPy generator per (corruption, severity) derived from a seed (`corruption_rng`) and cached
  as ``<cache_dir>/<dataset>_<corruption>_s<severity>_<n>_<seed>.npy`` (written atomically).
  Generation needs the optional dependency ``imagecorruptions-imaug`` (and the scikit-image,
  OpenCV and numba it brings); reading the official files does not.
"""

from __future__ import annotations

import importlib.metadata
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasx.errors import NasxError
from nasx.io import save_npy_atomic

CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
"""The 15 benchmark corruptions, in CIFAR-C's (and FlatNAS's) order."""

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

CIFAR_C_PARAMS: dict[str, tuple[Any, ...]] = {
    # noise std on [0, 1] pixels
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    # Poisson photon count per unit intensity (lower = noisier)
    "shot_noise": (500, 250, 100, 75, 50),
    # fraction of salt-and-pepper values
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    # (disk radius, anti-alias blur sigma)
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    # (gaussian sigma, max pixel displacement, shuffle iterations)
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    # ImageMagick motion-blur (radius, sigma)
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    # zoom factors as numpy.arange(start, stop, step)
    "zoom_blur": (
        (1, 1.06, 0.01),
        (1, 1.11, 0.01),
        (1, 1.16, 0.01),
        (1, 1.21, 0.01),
        (1, 1.26, 0.01),
    ),
    # (mean, std, zoom, threshold, blur radius, blur sigma, image blend)
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    # (image weight, frost weight)
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    # (fog strength, plasma-fractal wibble decay)
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    # added HSV value
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    # contrast factor around the per-channel mean
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    # (displacement scale, displacement smoothing sigma, affine jitter), as multiples of the
    # image side (the script's ``IMSIZE * 0.05`` etc. with ``IMSIZE = 32``)
    "elastic_transform": (
        (0.0, 0.0, 0.08),
        (0.05, 0.2, 0.07),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03),
    ),
    # down-sampling factor (BOX down, BOX up)
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    # JPEG quality
    "jpeg_compression": (80, 65, 58, 50, 40),
}
"""Per corruption, the five severity constants of ``make_cifar_c.py`` (severity s is [s - 1])."""

_PACKAGE = "imagecorruptions-imaug"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class CorruptedImages:
    """One corruption at one severity of the (first ``n``) test images.

    Attributes:
        images: uint8 ``(n, H, W, C)``.
        labels: int64 ``(n,)``.
        corruption: one of `CORRUPTIONS`.
        severity: 1-5.
        source: ``"official"`` or ``"generated:imagecorruptions-imaug <version>"``.
        cached: the images were read from the generation cache.
    """

    images: np.ndarray
    labels: np.ndarray
    corruption: str
    severity: int
    source: str
    cached: bool = False


def _check(corruption: str, severity: int) -> None:
    if corruption not in CIFAR_C_PARAMS:
        raise ValueError(f"unknown corruption {corruption!r}; choose from {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of 1-5, got {severity!r}")


def corruption_rng(seed: int, corruption: str, severity: int) -> np.random.Generator:
    """The generator of one (corruption, severity), independent of the others."""
    _check(corruption, severity)
    key = [seed, CORRUPTIONS.index(corruption), severity]
    return np.random.default_rng(np.random.SeedSequence(key))


def generator_version() -> str:
    """The installed ``imagecorruptions-imaug`` version; `NasxError` when it is missing."""
    try:
        return importlib.metadata.version(_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise NasxError(
            "generating CIFAR-C corruptions needs the imagecorruptions-imaug package: "
            'pip install "imagecorruptions-imaug==1.1.5", or point official_dir at the '
            "CIFAR-10-C/CIFAR-100-C .npy files"
        ) from None


def corrupt_images(
    images: np.ndarray, corruption: str, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Apply one CIFAR-C corruption to a batch of RGB images.

    Args:
        images: uint8 ``(N, H, W, 3)`` with ``H == W`` (the constants are CIFAR's, for 32x32).
        corruption: one of `CORRUPTIONS`.
        severity: 1-5.
        rng: the source of every random draw, consumed image by image in order.

    Returns:
        uint8 images of the same shape (float results truncated, as the script's
        ``np.uint8``).
    """
    _check(corruption, severity)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 (N, H, W, 3) images, got {images.dtype} {images.shape}")
    if images.shape[1] != images.shape[2] or images.shape[1] < 8:
        raise ValueError(f"expected square images of side >= 8, got {images.shape[1:3]}")
    generator_version()
    from nasx.ood import _cifar_c

    out = _cifar_c.apply(images, corruption, CIFAR_C_PARAMS[corruption][severity - 1], rng)
    return np.clip(out, 0, 255).astype(np.uint8)


def images_digest(images: np.ndarray) -> str:
    """A short content digest of clean images (8 hex digits of CRC-32 over shape and bytes)."""
    arr = np.ascontiguousarray(images)
    return f"{zlib.crc32(arr.tobytes(), zlib.crc32(repr(arr.shape).encode())):08x}"


def cache_path(
    cache_dir: str | Path,
    dataset: str,
    corruption: str,
    severity: int,
    n: int,
    seed: int,
    digest: str = "",
) -> Path:
    """``<cache_dir>/<dataset>_<corruption>_s<severity>_<n>_<seed>[_<digest>].npy``."""
    if not _SAFE_NAME.match(dataset):
        raise ValueError(f"dataset name {dataset!r} must be letters, digits, '_', '.' or '-'")
    tail = f"_{digest}" if digest else ""
    return Path(cache_dir).expanduser() / f"{dataset}_{corruption}_s{severity}_{n}_{seed}{tail}.npy"


def generate_corrupted(
    images: np.ndarray,
    labels: np.ndarray,
    corruption: str,
    severity: int,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    dataset: str = "cifar10",
) -> CorruptedImages:
    """Corrupt clean test images, reading or filling the on-disk cache.

    The cache key is (dataset, corruption, severity, number of images, seed, a digest of the
    clean images' content), so a different subset of images never reads another's cache. A
    cached file of the wrong shape, or one that cannot be read, is regenerated.

    Args:
        images: clean uint8 ``(n, H, W, 3)`` test images.
        labels: their labels.
        corruption: one of `CORRUPTIONS`.
        severity: 1-5.
        seed: generation seed (`corruption_rng`).
        cache_dir: folder of the cache; ``None`` disables it.
        dataset: dataset name used in the cache file name.

    Returns:
        The corrupted images, with ``source="generated:imagecorruptions-imaug <version>"``.
    """
    _check(corruption, severity)
    source = f"generated:{_PACKAGE} {generator_version()}"
    labels = np.asarray(labels).astype(np.int64)
    path = None
    if cache_dir is not None:
        path = cache_path(
            cache_dir, dataset, corruption, severity, len(images), seed, images_digest(images)
        )
        if path.is_file():
            try:
                cached = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                cached = None  # unreadable (e.g. written by another tool): regenerate
            if cached is not None and cached.shape == images.shape and cached.dtype == np.uint8:
                return CorruptedImages(cached, labels, corruption, severity, source, cached=True)
    out = corrupt_images(images, corruption, severity, corruption_rng(seed, corruption, severity))
    if path is not None:
        save_npy_atomic(path, out)
    return CorruptedImages(out, labels, corruption, severity, source)


def read_official(
    root: str | Path,
    corruption: str,
    severity: int,
    limit: int | None = None,
    indices: np.ndarray | None = None,
) -> CorruptedImages:
    """Read one severity of an official CIFAR-10-C / CIFAR-100-C corruption file.

    Args:
        root: folder with ``<corruption>.npy`` (``(5 n, H, W, 3)`` uint8, severities in
            order) and ``labels.npy`` (``5 n`` labels as published, or ``n``).
        corruption: one of `CORRUPTIONS`.
        severity: 1-5.
        limit: read only the first ``limit`` images of the severity.
        indices: read these test-set positions instead (a dataset's ``limit_test`` subset,
            `nasx.data.base.ImageData.test_indices`); overrides ``limit``.

    Returns:
        The images with ``source="official"``.
    """
    _check(corruption, severity)
    root = Path(root).expanduser()
    file, label_file = root / f"{corruption}.npy", root / "labels.npy"
    for f in (file, label_file):
        if not f.is_file():
            raise NasxError(
                f"{f} does not exist: download CIFAR-10-C/CIFAR-100-C (Zenodo 2535967 / "
                "3555552) into that folder, or leave official_dir unset to generate them"
            )
    arr = np.load(file, mmap_mode="r", allow_pickle=False)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or len(arr) % 5:
        raise NasxError(
            f"{file} has {arr.dtype} {arr.shape}; expected uint8 (5 n, H, W, 3) as published"
        )
    per = len(arr) // 5
    if indices is None:
        idx = np.arange(per if limit is None else min(limit, per))
    else:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= per):
            raise NasxError(f"{file} holds {per} images per severity; asked for index {idx.max()}")
    start = (severity - 1) * per
    all_labels = np.load(label_file, allow_pickle=False)
    if len(all_labels) == len(arr):
        labels = all_labels[start + idx]
    elif len(all_labels) == per:
        labels = all_labels[idx]
    else:
        raise NasxError(f"{label_file} has {len(all_labels)} labels; expected {len(arr)} or {per}")
    images = np.array(arr[start + idx])
    return CorruptedImages(images, labels.astype(np.int64), corruption, severity, "official")


@dataclass(frozen=True)
class CorruptionSource:
    """Where corrupted test images come from.

    With ``official_dir`` every corruption is read from the official files (a missing file is
    an error, so sources are never mixed silently); otherwise it is generated and cached.

    Args:
        official_dir: folder of the official ``.npy`` files, or ``None`` to generate.
        cache_dir: generation cache folder (``None``: no cache).
        dataset: dataset name in cache file names (``cifar10``, ``cifar100``).
        seed: generation seed.
    """

    official_dir: str | Path | None = None
    cache_dir: str | Path | None = None
    dataset: str = "cifar10"
    seed: int = 0

    def load(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        corruption: str,
        severity: int,
        indices: np.ndarray | None = None,
    ) -> CorruptedImages:
        """The corrupted counterpart of the clean test ``images``.

        ``indices`` are their positions in the test set (default: the first n in order); the
        official files are read at those positions.
        """
        if self.official_dir is None:
            return generate_corrupted(
                images, labels, corruption, severity, self.seed, self.cache_dir, self.dataset
            )
        if indices is not None and len(indices) != len(images):
            raise ValueError(f"got {len(indices)} indices for {len(images)} images")
        out = read_official(
            self.official_dir, corruption, severity, limit=len(images), indices=indices
        )
        if len(out.labels) != len(labels) or not np.array_equal(out.labels, labels):
            raise NasxError(
                f"the labels in {self.official_dir} do not match the clean test labels: pass "
                "the first n test images in test-set order, or check that the official files "
                f"belong to {self.dataset}"
            )
        return out
