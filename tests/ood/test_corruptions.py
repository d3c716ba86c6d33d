"""CIFAR-C corruptions (official files and generation) and the mean corruption error."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nasx.errors import NasxError
from nasx.ood import (
    CIFAR_C_PARAMS,
    CORRUPTIONS,
    CorruptionSource,
    corrupt_images,
    corruption_accuracy,
    corruption_rng,
    generate_corrupted,
    read_official,
)
from nasx.ood import corruptions as corruptions_module

needs_generator = pytest.mark.skipif(
    find_spec("imagecorruptions") is None, reason="imagecorruptions-imaug is not installed"
)


def _images(n: int = 4, seed: int = 0) -> np.ndarray:
    """Smooth colour patterns plus mild noise: closer to photos than uniform noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    out = []
    for i in range(n):
        phase = rng.uniform(0, 2 * np.pi, 3)
        img = np.stack(
            [127 + 100 * np.sin(xx / (4 + i) + phase[k]) * np.cos(yy / (5 + k)) for k in range(3)],
            axis=-1,
        )
        out.append(img + rng.normal(0, 5, img.shape))
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def test_constants_are_cifar_c_not_imagenet_c() -> None:
    # hendrycks/robustness@ca36008, ImageNet-C/create_c/make_cifar_c.py
    assert CIFAR_C_PARAMS["gaussian_noise"] == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert CIFAR_C_PARAMS["shot_noise"] == (500, 250, 100, 75, 50)
    assert CIFAR_C_PARAMS["impulse_noise"] == (0.01, 0.02, 0.03, 0.05, 0.07)
    assert CIFAR_C_PARAMS["defocus_blur"][0] == (0.3, 0.4)
    assert CIFAR_C_PARAMS["glass_blur"][4] == (0.4, 1, 2)
    assert CIFAR_C_PARAMS["motion_blur"][3] == (8, 2)
    assert CIFAR_C_PARAMS["zoom_blur"][4] == (1, 1.26, 0.01)
    assert CIFAR_C_PARAMS["snow"][2] == (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9)
    assert CIFAR_C_PARAMS["frost"][4] == (0.75, 0.45)
    assert CIFAR_C_PARAMS["fog"][0] == (0.2, 3)
    assert CIFAR_C_PARAMS["brightness"] == (0.05, 0.1, 0.15, 0.2, 0.3)
    assert CIFAR_C_PARAMS["contrast"] == (0.75, 0.5, 0.4, 0.3, 0.15)
    assert tuple(32 * v for v in CIFAR_C_PARAMS["elastic_transform"][1]) == pytest.approx(
        (32 * 0.05, 32 * 0.2, 32 * 0.07)
    )
    assert CIFAR_C_PARAMS["pixelate"] == (0.95, 0.9, 0.85, 0.75, 0.65)
    assert CIFAR_C_PARAMS["jpeg_compression"] == (80, 65, 58, 50, 40)
    # ImageNet-C's gaussian_noise is (.08, .12, .18, .26, .38)
    assert CIFAR_C_PARAMS["gaussian_noise"][4] != 0.38
    assert set(CIFAR_C_PARAMS) == set(CORRUPTIONS) and len(CORRUPTIONS) == 15
    assert all(len(v) == 5 for v in CIFAR_C_PARAMS.values())


@needs_generator
@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_each_corruption_runs_and_grows_with_severity(corruption: str) -> None:
    x = _images()
    diff = {}
    for s in (1, 5):
        y = corrupt_images(x, corruption, s, corruption_rng(0, corruption, s))
        assert y.dtype == np.uint8 and y.shape == x.shape
        diff[s] = float(np.abs(y.astype(np.float64) - x).mean())
    assert diff[1] > 0
    if corruption == "elastic_transform":
        # make_cifar_c.py shrinks the affine jitter from 0.08 to 0.03 of the side as the
        # elastic field grows, so the pixel change is not monotonic in the severity
        assert diff[5] > 0
    else:
        assert diff[5] > diff[1]


def test_rng_differs_per_corruption_and_severity() -> None:
    draws = {
        (c, s): corruption_rng(3, c, s).integers(1 << 30)
        for c in ("gaussian_noise", "snow")
        for s in (1, 2)
    }
    assert len(set(draws.values())) == 4
    assert corruption_rng(3, "snow", 2).integers(1 << 30) == draws["snow", 2]


@needs_generator
def test_generation_is_seeded_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _images(), np.arange(4)
    a = generate_corrupted(x, y, "gaussian_noise", 3, seed=7, cache_dir=tmp_path)
    assert a.source.startswith("generated:imagecorruptions-imaug ") and not a.cached
    digest = corruptions_module.images_digest(x)
    assert (tmp_path / f"cifar10_gaussian_noise_s3_4_7_{digest}.npy").is_file()
    assert list(tmp_path.glob(".*")) == []  # no temporary file left behind
    np.testing.assert_array_equal(
        a.images, generate_corrupted(x, y, "gaussian_noise", 3, seed=7).images
    )
    assert not np.array_equal(
        a.images, generate_corrupted(x, y, "gaussian_noise", 3, seed=8).images
    )

    def fail(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("regenerated instead of reading the cache")

    monkeypatch.setattr(corruptions_module, "corrupt_images", fail)
    b = generate_corrupted(x, y, "gaussian_noise", 3, seed=7, cache_dir=tmp_path)
    assert b.cached
    np.testing.assert_array_equal(a.images, b.images)
    # other images of the same count never read this cache (a different limit_test subset)
    with pytest.raises(AssertionError, match="regenerated"):
        generate_corrupted(_images(seed=5), y, "gaussian_noise", 3, seed=7, cache_dir=tmp_path)


def _write_official(root: Path, n: int, corruptions: tuple[str, ...]) -> np.ndarray:
    labels = np.arange(n) % 10
    for c in corruptions:
        arr = np.zeros((5 * n, 32, 32, 3), np.uint8)
        for s in range(5):  # severity s+1, image i -> value 10 * (s + 1) + i
            arr[s * n : (s + 1) * n] = (10 * (s + 1) + np.arange(n))[:, None, None, None]
        np.save(root / f"{c}.npy", arr)
    np.save(root / "labels.npy", np.tile(labels, 5).astype(np.uint8))
    return labels


def test_read_official_files(tmp_path: Path) -> None:
    labels = _write_official(tmp_path, 6, ("fog",))
    out = read_official(tmp_path, "fog", 3)
    assert out.source == "official" and out.images.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(out.images[:, 0, 0, 0], 30 + np.arange(6))
    np.testing.assert_array_equal(out.labels, labels)
    assert len(read_official(tmp_path, "fog", 5, limit=2).images) == 2
    with pytest.raises(NasxError, match="snow.npy"):
        read_official(tmp_path, "snow", 1)
    src = CorruptionSource(official_dir=tmp_path)
    with pytest.raises(NasxError, match="labels"):
        src.load(np.zeros((6, 32, 32, 3), np.uint8), labels[::-1].copy(), "fog", 1)
    # a limit_test subset is read at its positions in the test set
    idx = np.array([1, 4, 5])
    sub = src.load(np.zeros((3, 32, 32, 3), np.uint8), labels[idx], "fog", 2, indices=idx)
    np.testing.assert_array_equal(sub.images[:, 0, 0, 0], 20 + idx)
    with pytest.raises(NasxError, match="index 9"):
        read_official(tmp_path, "fog", 1, indices=np.array([9]))


@needs_generator
def test_corruption_accuracy_and_mce(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10)).train()
    x, y = _images(8, seed=1), np.arange(8) % 10
    norm = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    res = corruption_accuracy(
        net, x, y, norm, image_size=16, batch_size=3, source=CorruptionSource(cache_dir=tmp_path)
    )
    assert net.training  # mode restored
    assert set(res["errors"]) == set(CORRUPTIONS) and res["n_images"] == 8
    errs = [e for per in res["errors"].values() for e in per.values()]
    assert len(errs) == 75 and all(0.0 <= e <= 100.0 for e in errs)
    assert 0.0 <= res["clean_error"] <= 100.0
    for c, per in res["errors"].items():
        assert sorted(per) == [1, 2, 3, 4, 5]
        assert res["mean_errors"][c] == pytest.approx(np.mean(list(per.values())))
    assert res["mce"] == pytest.approx(np.mean(list(res["mean_errors"].values())))
    assert all(s.startswith("generated:") for s in res["sources"].values())

    off = tmp_path / "official"
    off.mkdir()
    _write_official(off, 8, ("contrast",))
    res = corruption_accuracy(
        net, x, y, norm, 16, corruptions=["contrast"], source=CorruptionSource(official_dir=off)
    )
    assert res["sources"] == {"contrast": "official"}
    assert res["mce"] == pytest.approx(res["mean_errors"]["contrast"])


def test_generation_without_the_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(NasxError, match="pip install"):
        generate_corrupted(_images(1), np.zeros(1), "fog", 1)
