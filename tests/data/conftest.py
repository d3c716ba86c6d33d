"""Tiny copies of every dataset in its real on-disk format, shared by the data tests.

The builders write a few small images (or the format's arrays) where each dataset's reader
looks; `no_md5` lets torchvision read copies whose checksums cannot match the real files.
Test modules import the builders (``from tests.data.conftest import make_cifar100``).
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
from PIL import Image

CINIC_CLASSES = ["airplane", "automobile", "bird", "cat", "deer"]
CINIC_CLASSES += ["dog", "frog", "horse", "ship", "truck"]


@pytest.fixture
def no_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision's integrity checks without the MD5 sums: the files must still exist."""
    import torchvision.datasets.cifar
    import torchvision.datasets.flowers102
    import torchvision.datasets.stl10
    import torchvision.datasets.svhn

    def exists(fpath: str, md5: str | None = None) -> bool:
        return os.path.isfile(fpath)

    for module in (
        torchvision.datasets.cifar,
        torchvision.datasets.svhn,
        torchvision.datasets.stl10,
        torchvision.datasets.flowers102,
    ):
        monkeypatch.setattr(module, "check_integrity", exists)


def save_image(path: Path, value: int, size: tuple[int, int] = (12, 12)) -> None:
    """A flat ``value`` image of ``size`` (width, height), as JPEG or PNG by its suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((size[1], size[0], 3), value, dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)


# --- tiny copies in the real formats ----------------------------------------------------------


def make_cifar10(root: Path, n_train: int = 20, n_test: int = 10) -> Path:
    """torchvision's ``root/cifar-10-batches-py/``: five pickled training batches, one test."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    batches = [(f"data_batch_{b}", range(b - 1, n_train, 5)) for b in range(1, 6)]
    for name, rows in [*batches, ("test_batch", range(n_test))]:
        labels = [i % 10 for i in rows]
        images = np.repeat(np.array(labels, dtype=np.uint8) * 20, 32 * 32 * 3)
        entry = {
            "batch_label": name,
            "labels": labels,
            "data": images.reshape(len(labels), 3 * 32 * 32),  # rows of CHW bytes
            "filenames": [f"img_{i}.png" for i in rows],
        }
        with open(base / name, "wb") as f:
            pickle.dump(entry, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{k}" for k in range(10)]}, f)
    return root


def make_cifar10_npz(root: Path, n_train: int = 20, n_test: int = 10) -> Path:
    """nasx's ``root/cifar10.npz``: ``<split>_jpeg`` bytes, ``_offsets`` and ``_labels``."""
    root.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        blobs = []
        for k in labels:
            buf = io.BytesIO()
            Image.fromarray(np.full((32, 32, 3), 20 * k, dtype=np.uint8)).save(buf, "JPEG")
            blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
        arrays[f"{split}_jpeg"] = np.concatenate(blobs)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(b) for b in blobs])
        arrays[f"{split}_labels"] = labels
    np.savez(root / "cifar10.npz", **arrays)
    return root


def make_cifar100(root: Path, n_train: int = 20, n_test: int = 10) -> Path:
    """``root/cifar-100-python/{train,test,meta}``: pickled dicts, rows of CHW bytes."""
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = (np.arange(n) * 7 + 3) % 100
        images = np.repeat(2 * fine, 32 * 32 * 3).reshape(n, 32, 32, 3).astype(np.uint8)
        entry = {
            "filenames": [f"img_{i}.png" for i in range(n)],
            "batch_label": f"{name} batch",
            "fine_labels": fine.tolist(),
            "coarse_labels": (fine // 5).tolist(),
            "data": images.transpose(0, 3, 1, 2).reshape(n, -1),
        }
        with open(base / name, "wb") as f:
            pickle.dump(entry, f)
    meta = {
        "fine_label_names": [f"fine{i}" for i in range(100)],
        "coarse_label_names": [f"coarse{i}" for i in range(20)],
    }
    with open(base / "meta", "wb") as f:
        pickle.dump(meta, f)
    return root


def make_svhn(root: Path, n_train: int = 20, n_test: int = 10) -> Path:
    """``root/{train,test}_32x32.mat``: ``X`` (32, 32, 3, N) uint8 and ``y`` (N, 1) in 1-10."""
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 10 + 1  # 1..10; 10 is the digit 0
        x = np.repeat(20 * y, 32 * 32 * 3).reshape(n, 32, 32, 3).astype(np.uint8)
        scipy.io.savemat(
            root / f"{name}_32x32.mat",
            {"X": x.transpose(1, 2, 3, 0), "y": y.reshape(-1, 1).astype(np.uint8)},
        )
    return root


def make_stl10(root: Path, n_train: int = 10, n_test: int = 6) -> Path:
    """``root/stl10_binary/*.bin``: column-major 3x96x96 uint8 images, labels 1-10."""
    base = root / "stl10_binary"
    base.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 10 + 1
        x = np.repeat(20 * y, 96 * 96 * 3).reshape(n, 96, 96, 3).astype(np.uint8)
        x[:, :8] = 255  # the top rows are white: a transposed reader would whiten the left
        # (N, H, W, C) -> (N, C, W, H): each channel stored column by column
        x.transpose(0, 3, 2, 1).tofile(base / f"{name}_X.bin")
        y.astype(np.uint8).tofile(base / f"{name}_y.bin")
    (base / "unlabeled_X.bin").write_bytes(b"")
    (base / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)))
    return root


def make_cinic10(root: Path) -> Path:
    """``root/{train,valid,test}/<class>/*.png``: 2, 1 and 1 images of 32 px per class."""
    for split, n in (("train", 2), ("valid", 1), ("test", 1)):
        for k, name in enumerate(CINIC_CLASSES):
            for i in range(n):
                save_image(root / split / name / f"n0000{k}_{i}.png", 20 * k, (32, 32))
    return root


def make_imagenette(root: Path) -> Path:
    """fast.ai's ``root/{train,val}/<wnid>/*.JPEG``: 3 and 1 images per class."""
    for split, n in (("train", 3), ("val", 1)):
        for k in range(10):
            for i in range(n):
                save_image(root / split / f"n0{k}440764" / f"img_{i}.JPEG", 20 * k, (40, 30))
    return root


def make_flowers102(root: Path) -> Path:
    """``root/flowers-102/{jpg/image_%05d.jpg, imagelabels.mat, setid.mat}``, labels 1-102."""
    base = root / "flowers-102"
    labels = np.array([1, 2, 3, 102, 4, 5, 101, 6, 7, 8, 100, 9])  # image i+1's label
    for i, label in enumerate(labels):
        save_image(base / "jpg" / f"image_{i + 1:05d}.jpg", 2 * int(label), (40 + i, 30))
    scipy.io.savemat(base / "imagelabels.mat", {"labels": labels.reshape(1, -1)})
    ids = {"trnid": [1, 2, 3, 4], "valid": [5, 6, 7, 8], "tstid": [9, 10, 11, 12]}
    scipy.io.savemat(base / "setid.mat", {k: np.array(v).reshape(1, -1) for k, v in ids.items()})
    return root


def make_aircraft(root: Path) -> Path:
    """``root/fgvc-aircraft-2013b/data/``: variants.txt, images_variant_<split>.txt, images/."""
    data = root / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True)
    variants = [f"Boeing 7{k:02d}-200" for k in range(100)]  # names with spaces, as real ones
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    for split, ks in (("trainval", [0, 5, 99, 42, 7, 8]), ("test", [99, 0, 3])):
        lines = []
        for i, k in enumerate(ks):
            image_id = f"{len(split)}{i:06d}"
            save_image(data / "images" / f"{image_id}.jpg", 2 * k, (50, 30))
            lines.append(f"{image_id} {variants[k]}")
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_pets(root: Path) -> Path:
    """``root/oxford-iiit-pet/{images/*.jpg, annotations/{trainval,test}.txt}``, 37 breeds."""
    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True)
    for split, per_breed in (("trainval", 2), ("test", 1)):
        lines = []
        for k in range(1, 38):
            for i in range(per_breed):
                image_id = f"breed_{k:02d}_{split}{i}"
                save_image(base / "images" / f"{image_id}.jpg", 5 * k)
                lines.append(f"{image_id} {k} {1 + k % 2} {k}")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_dtd(root: Path) -> Path:
    """``root/dtd/dtd/{images/<class>/*.jpg, labels/{train,val,test}1.txt}``, 47 classes."""
    data = root / "dtd" / "dtd"
    (data / "labels").mkdir(parents=True)
    classes = [f"texture{k:02d}" for k in range(47)]
    for split in ("train", "val", "test"):
        lines = []
        for k, name in enumerate(classes):
            save_image(data / "images" / name / f"{name}_{split}.jpg", 5 * k)
            lines.append(f"{name}/{name}_{split}.jpg")
        (data / "labels" / f"{split}1.txt").write_text("\n".join(lines) + "\n")
    return root


def make_tree(root: Path, classes: int = 3, per_class: int = 6, size: int = 20) -> Path:
    """``root/train/c<k>/*.JPEG`` and ``root/val/c<k>/*.JPEG``, as ImageNet stores them."""
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", 2)):
        for k in range(classes):
            folder = root / split / f"n0000{k}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)
                pixels[..., k % 3] = 255 - 20 * (k // 3)  # a class colour: classes differ
                Image.fromarray(pixels).save(folder / f"img_{i}.JPEG", quality=90)
    return root


def make_imagenet(root: Path) -> Path:
    """ImageNet's ``root/{train,val}/<wnid>/*.JPEG`` with all 1000 classes, one 8-px image each."""
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    for split in ("train", "val"):
        for k in range(1000):
            folder = root / split / f"n{k:08d}"
            folder.mkdir(parents=True)
            pixels[...] = (37 * k) % 256
            Image.fromarray(pixels).save(folder / f"{split}_{k}.JPEG", quality=90)
    return root
