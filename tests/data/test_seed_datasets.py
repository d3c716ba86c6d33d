"""The seeds' datasets, each read from a tiny copy in its real on-disk format.

torchvision checks the MD5 sums of the CIFAR, SVHN, STL-10 and Flowers102 files, which a tiny
copy cannot match; the `no_md5` fixture (in `tests/data/conftest.py`, beside the builders of
the copies) keeps every other check (the files must exist where torchvision looks) and lets
the real parsers read the copies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from nasx.data import (
    CIFAR100Data,
    CINIC10Data,
    DTDData,
    FGVCAircraftData,
    Flowers102Data,
    ImageData,
    ImageFolderData,
    OxfordPetsData,
    STL10Data,
    SVHNData,
)
from nasx.errors import NasxError
from tests.data.conftest import (
    make_aircraft,
    make_cifar100,
    make_cinic10,
    make_dtd,
    make_flowers102,
    make_imagenette,
    make_pets,
    make_stl10,
    make_svhn,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def pixel_values(data: ImageData, split: str) -> np.ndarray:
    """The mean pixel (0-255) of each image of a split, normalisation undone."""
    x, _ = data.split(split)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)  # type: ignore[attr-defined]
    std = torch.tensor(data.std).view(1, -1, 1, 1)  # type: ignore[attr-defined]
    return ((x * std + mean) * 255).mean(dim=(1, 2, 3)).numpy()


# --- every dataset: sizes, labels, a batch ----------------------------------------------------

# (class, maker, image size, extra args, training images, test images, classes)
CASES: list[tuple[type[ImageData], Callable[[Path], Path], int, dict, int, int, int]] = [
    (CIFAR100Data, make_cifar100, 32, {}, 20, 10, 100),
    (SVHNData, make_svhn, 32, {}, 20, 10, 10),
    (STL10Data, make_stl10, 96, {}, 10, 6, 10),
    (CINIC10Data, make_cinic10, 32, {}, 30, 10, 10),
    (Flowers102Data, make_flowers102, 224, {}, 8, 4, 102),
    (FGVCAircraftData, make_aircraft, 224, {}, 6, 3, 100),
    (OxfordPetsData, make_pets, 224, {}, 74, 37, 37),
    (DTDData, make_dtd, 224, {}, 94, 47, 47),
]
IDS = [c[0].__name__ for c in CASES]


@pytest.mark.usefixtures("no_md5")
@pytest.mark.parametrize(("cls", "make", "size", "kw", "n_train", "n_test", "k"), CASES, ids=IDS)
def test_reads_its_format_at_the_space_size(tmp_path, cls, make, size, kw, n_train, n_test, k):
    data = cls(
        root=str(make(tmp_path / "data")), valid_fraction=0.5, batch_size=4, eval_batch_size=8,
        num_workers=0, **kw,
    )  # fmt: skip
    assert data.num_classes == k
    data.setup(size, 3)
    n_valid = round(n_train * 0.5)
    assert data.train_size() == n_train - n_valid
    for split, n in (("train", n_train - n_valid), ("valid", n_valid), ("test", n_test)):
        x, y = data.split(split, limit=12)
        assert x.shape == (min(n, 12), 3, size, size) and x.dtype == torch.float32
        assert y.dtype == torch.int64 and int(y.min()) >= 0 and int(y.max()) < k
    xb, yb = next(iter(data.train_loader(seed=0)))
    batch = min(4, n_train - n_valid)
    assert xb.shape == (batch, 3, size, size) and yb.shape == (batch,)
    assert len(data.random_labels(0)) == n_train - n_valid


# --- labels map as each dataset defines -------------------------------------------------------


@pytest.mark.usefixtures("no_md5")
def test_cifar100_has_the_fine_labels(tmp_path):
    data = CIFAR100Data(root=str(make_cifar100(tmp_path)), valid_fraction=0.0, augment=False)
    data.setup(32, 3)
    for split, n in (("train", 20), ("test", 10)):
        fine = (np.arange(n) * 7 + 3) % 100
        assert data.split(split)[1].tolist() == fine.tolist()  # not the coarse fine // 5
        np.testing.assert_allclose(pixel_values(data, split), 2 * fine, atol=0.5)


@pytest.mark.usefixtures("no_md5")
def test_svhn_maps_label_10_to_digit_0(tmp_path):
    data = SVHNData(root=str(make_svhn(tmp_path)), valid_fraction=0.0, augment=False)
    data.setup(32, 3)
    _, y = data.split("train")
    assert y.tolist() == [(i % 10 + 1) % 10 for i in range(20)]
    raw = np.where(y.numpy() == 0, 10, y.numpy())  # the file's label of each image
    np.testing.assert_allclose(pixel_values(data, "train"), 20 * raw, atol=0.5)


@pytest.mark.usefixtures("no_md5")
def test_stl10_reads_column_major_images_and_one_based_labels(tmp_path):
    data = STL10Data(root=str(make_stl10(tmp_path)), valid_fraction=0.0, augment=False)
    data.setup(96, 3)
    x, y = data.split("test")
    assert y.tolist() == [0, 1, 2, 3, 4, 5]
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (data.mean, data.std))
    pixels = (x * std + mean) * 255
    assert torch.allclose(pixels[:, :, :8, :], torch.tensor(255.0), atol=0.5)  # top rows
    below = pixels[:, :, 8:, :].mean(dim=(1, 2, 3))
    np.testing.assert_allclose(below.numpy(), 20 * (y.numpy() + 1), atol=0.5)


def test_cinic10_classes_and_trainval(tmp_path):
    root = str(make_cinic10(tmp_path))
    data = CINIC10Data(root=root, valid_fraction=0.0, augment=False)
    data.setup(32, 3)
    _, y = data.split("train")
    assert len(y) == 30 and sorted(set(y.tolist())) == list(range(10))
    # sorted folder names are CIFAR-10's class order; each image's colour is its class
    np.testing.assert_allclose(pixel_values(data, "train"), 20 * y.numpy(), atol=0.5)
    assert data.split("test")[1].tolist() == list(range(10))
    only_train = CINIC10Data(root=root, trainval=False, valid_fraction=0.0)
    only_train.setup(32, 3)
    assert only_train.train_size() == 20
    limited = CINIC10Data(root=root, limit_train=7, limit_test=3, valid_fraction=0.0)
    limited.setup(32, 3)
    assert limited.train_size() == 7 and len(limited.split("test")[1]) == 3


@pytest.mark.usefixtures("no_md5")
@pytest.mark.parametrize(
    ("cls", "make", "test_labels", "value"),
    [
        (Flowers102Data, make_flowers102, [6, 7, 99, 8], lambda y: 2 * (y + 1)),  # 1-based files
        (FGVCAircraftData, make_aircraft, [99, 0, 3], lambda y: 2 * y),  # variants.txt order
        (OxfordPetsData, make_pets, list(range(37)), lambda y: 5 * (y + 1)),  # 1-based files
        (DTDData, make_dtd, list(range(47)), lambda y: 5 * y),  # sorted class names
    ],
    ids=["Flowers102Data", "FGVCAircraftData", "OxfordPetsData", "DTDData"],
)
def test_transfer_labels_follow_torchvision(tmp_path, cls, make, test_labels, value):
    data = cls(root=str(make(tmp_path)), valid_fraction=0.0, num_workers=0)
    data.setup(32, 3)
    _, y = data.split("test")
    assert sorted(y.tolist()) == sorted(test_labels)
    np.testing.assert_allclose(pixel_values(data, "test"), value(y.numpy()), atol=3)


@pytest.mark.usefixtures("no_md5")
def test_transfer_trainval_joins_the_official_val_split(tmp_path):
    root = str(make_dtd(tmp_path))
    joined, alone = DTDData(root=root, valid_fraction=0.0), DTDData(root, trainval=False)
    joined.setup(32, 3)
    alone.setup(32, 3)
    assert joined.train_size() == 94 and alone.train_size() == 47 - round(47 * 0.5)


def test_imagenette_is_an_image_folder_preset(compose_cfg, tmp_path):
    root = make_imagenette(tmp_path)
    cfg = compose_cfg("dataset=imagenette", f"dataset.root={root}", "dataset.num_workers=0")
    data = instantiate(cfg.dataset)
    assert isinstance(data, ImageFolderData) and data.num_classes == 10
    assert data.resize_ratio == 1.0  # CNAS evaluates Imagenette by Resize(r) + CenterCrop(r)
    data.setup(160, 3)
    assert data.train_size() == 27  # 30 training images, 0.1 held out as valid
    xb, yb = next(iter(data.train_loader(seed=0)))
    assert xb.shape == (min(data.batch_size, 27), 3, 160, 160)
    x, y = data.split("test")
    assert x.shape == (10, 3, 160, 160) and y.tolist() == list(range(10))


# --- errors that name the fix -----------------------------------------------------------------

ALL = [c[0] for c in CASES]
LAYOUT = {
    CIFAR100Data: "cifar-100-python",
    SVHNData: "train_32x32.mat",
    STL10Data: "stl10_binary",
    CINIC10Data: "root/train/<class>/",
    Flowers102Data: "flowers-102",
    FGVCAircraftData: "fgvc-aircraft-2013b",
    OxfordPetsData: "oxford-iiit-pet",
    DTDData: "dtd/dtd",
}


@pytest.mark.parametrize("cls", ALL, ids=IDS)
def test_constructors_read_nothing(cls):
    cls(root="/nowhere")  # the config test instantiates every option this way
    cls(root="/nowhere", download=True)


@pytest.mark.parametrize("cls", ALL, ids=IDS)
def test_root_not_set_names_the_fix(cls):
    with pytest.raises(NasxError, match=r"dataset\.root=<dir>") as err:
        cls().setup(32, 3)
    message = str(err.value)
    assert "\n" not in message and LAYOUT[cls] in message
    if cls is CINIC10Data:  # torchvision cannot download it: the message says where to
        assert "download=true" not in message and "CINIC-10.tar.gz" in message
    else:
        assert "dataset.download=true" in message


@pytest.mark.parametrize("cls", ALL, ids=IDS)
def test_missing_files_name_the_layout(tmp_path, cls):
    with pytest.raises(NasxError, match="does not exist") as err:
        cls(root=str(tmp_path / "nowhere")).setup(32, 3)
    assert LAYOUT[cls] in str(err.value)
    with pytest.raises(NasxError, match="no readable") as err:
        cls(root=str(tmp_path)).setup(32, 3)  # an empty folder
    assert LAYOUT[cls] in str(err.value) and "\n" not in str(err.value)


def test_real_checksums_reject_a_tiny_copy(tmp_path):
    # without the fixture, torchvision's MD5 check applies: a wrong file is a clear error
    with pytest.raises(NasxError, match="cifar-100-python.*download=true"):
        CIFAR100Data(root=str(make_cifar100(tmp_path))).setup(32, 3)


@pytest.mark.usefixtures("no_md5")
@pytest.mark.parametrize(
    ("cls", "make", "spoil"),
    [
        (CIFAR100Data, make_cifar100, ("cifar-100-python/train", b"not a pickle")),
        (SVHNData, make_svhn, ("train_32x32.mat", b"garbage" * 20)),
        (STL10Data, make_stl10, ("stl10_binary/train_X.bin", b"\0" * 1000)),
        (Flowers102Data, make_flowers102, ("flowers-102/setid.mat", b"")),
        (FGVCAircraftData, make_aircraft, ("fgvc-aircraft-2013b/data/variants.txt", b"x\n")),
        (DTDData, make_dtd, ("dtd/dtd/labels/test1.txt", b"no-slash\n")),
    ],
    ids=["CIFAR100Data", "SVHNData", "STL10Data", "Flowers102Data", "FGVCAircraftData", "DTDData"],
)
def test_malformed_files_are_nasx_errors(tmp_path, cls, make, spoil):
    root = make(tmp_path)
    (root / spoil[0]).write_bytes(spoil[1])
    with pytest.raises(NasxError, match="no readable") as err:
        cls(root=str(root)).setup(32, 3)
    assert LAYOUT[cls] in str(err.value)


def test_cinic10_wrong_class_folders_are_named(tmp_path):
    root = make_cinic10(tmp_path)
    (root / "test" / "truck").rename(root / "test" / "lorry")
    with pytest.raises(NasxError, match="class folders"):
        CINIC10Data(root=str(root)).setup(32, 3)


@pytest.mark.usefixtures("no_md5")
def test_incomplete_transfer_copy_is_named(tmp_path):
    root = make_pets(tmp_path)
    lines = (root / "oxford-iiit-pet/annotations/test.txt").read_text().splitlines()
    (root / "oxford-iiit-pet/annotations/test.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(NasxError, match="test split .* has 36 classes, not 37"):
        OxfordPetsData(root=str(root)).setup(32, 3)


@pytest.mark.usefixtures("no_md5")
def test_splits_naming_different_classes_are_rejected(tmp_path):
    root = make_dtd(tmp_path)
    labels = root / "dtd/dtd/labels/test1.txt"
    labels.write_text(labels.read_text().replace("texture46/texture46", "texture99/texture46"))
    (root / "dtd/dtd/images/texture99").mkdir()
    with pytest.raises(NasxError, match="different classes"):
        DTDData(root=str(root)).setup(32, 3)
