"""Datasets: splits, resizing, random labels, loaders, and CIFAR-10 error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nasx.data import CIFAR10Data, DigitsData, FakeData
from nasx.errors import NasxError

CIFAR_DIR = Path("/work/shared/data/cifar10")


pytestmark = pytest.mark.usefixtures("one_thread")


def fake(**kw) -> FakeData:
    args = dict(num_train=120, num_test=30, size=8, num_classes=4, batch_size=16)
    args.update(kw)
    return FakeData(**args)


def _rows(x: torch.Tensor) -> list[bytes]:
    return [r.numpy().tobytes() for r in x.reshape(len(x), -1)]


# --- splits --------------------------------------------------------------------------------


def test_fake_splits_partition_the_training_images():
    data = fake(valid_fraction=0.25)
    data.setup(8, 3)
    (trx, try_), (vax, vay), (tex, tey) = (data.split(s) for s in ("train", "valid", "test"))
    assert (len(trx), len(vax), len(tex)) == (90, 30, 30)
    assert len(try_) == 90 and len(vay) == 30 and len(tey) == 30
    assert try_.dtype == vay.dtype == tey.dtype == torch.int64
    # train and valid are a partition of the prepared raw training images: no overlap, no loss
    raw = data._load()
    full = _rows(data._prepare(raw.train_x, 8, 3))
    tr, va = _rows(trx), _rows(vax)
    assert len(set(full)) == len(full)  # the generated images are distinct
    assert not set(tr) & set(va)
    assert sorted(tr + va) == sorted(full)
    assert not (set(_rows(tex)) & set(full))


def test_digits_split_sizes_add_up():
    data = DigitsData(test_fraction=0.2, valid_fraction=0.5)
    data.setup(8, 1)
    n = {s: len(data.split(s)[1]) for s in ("train", "valid", "test")}
    assert sum(n.values()) == 1797
    assert n["test"] == round(1797 * 0.2)
    assert abs(n["train"] - n["valid"]) <= 1
    for s in n:
        x, y = data.split(s)
        assert len(x) == len(y)
        assert set(y.tolist()) == set(range(10))


@pytest.mark.parametrize("cls", [DigitsData, FakeData])
def test_splits_are_deterministic_per_split_seed(cls):
    def load(split_seed):
        d = cls(split_seed=split_seed)
        d.setup(8, 3)
        return d

    a, b, c = load(0), load(0), load(1)
    for s in ("train", "valid", "test"):
        assert torch.equal(a.split(s)[0], b.split(s)[0])
        assert torch.equal(a.split(s)[1], b.split(s)[1])
    assert not torch.equal(a.split("train")[0], c.split("train")[0])


@pytest.mark.parametrize(
    ("cls", "size", "channels"),
    [(DigitsData, 16, 3), (DigitsData, 8, 1), (FakeData, 16, 3), (FakeData, 4, 3)],
)
def test_images_are_resized_to_the_space_input(cls, size, channels):
    data = cls()
    data.setup(size, channels)
    for s in ("train", "valid", "test"):
        x, _ = data.split(s)
        assert x.shape[1:] == (channels, size, size)
        assert x.dtype == torch.float32
        assert x.is_contiguous()


def test_grey_images_are_copied_to_every_channel():
    data = DigitsData()
    data.setup(16, 3)
    x, _ = data.split("train")
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])


def test_rgb_images_cannot_become_single_channel():
    with pytest.raises(ValueError, match="channels"):
        fake().setup(8, 1)


def test_images_are_normalised():
    data = DigitsData()
    data.setup(8, 1)
    x, _ = data.split("train")
    assert abs(float(x.mean())) < 0.1
    assert 0.8 < float(x.std()) < 1.2


def test_valid_fraction_zero_trains_on_every_image():
    # RLNAS: the supernet sees all training images; the valid split is empty
    full, half = fake(valid_fraction=0.0), fake(valid_fraction=0.5)
    full.setup(8, 3)
    half.setup(8, 3)
    n = len(half.split("train")[1]) + len(half.split("valid")[1])
    assert len(full.split("train")[1]) == n
    assert len(full.split("valid")[1]) == 0
    assert len(full.train_loader(0).dataset) == n


def test_split_before_setup_is_an_error():
    with pytest.raises(RuntimeError, match="setup"):
        fake().split("train")


@pytest.mark.parametrize(
    "kw",
    [{"batch_size": 0}, {"eval_batch_size": 0}, {"valid_fraction": -0.1}, {"valid_fraction": 1.0}],
)
def test_invalid_arguments(kw):
    with pytest.raises(ValueError):
        fake(**kw)


# --- random labels and loaders -------------------------------------------------------------


def test_random_labels_fixed_per_seed_and_cover_the_range():
    data = fake(num_train=400)
    data.setup(8, 3)
    n_train = len(data.split("train")[1])
    a, b, c = data.random_labels(0), data.random_labels(0), data.random_labels(1)
    assert a.shape == (n_train,)
    assert a.dtype == torch.int64
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert set(a.tolist()) == set(range(4))
    # independent of the real labels
    assert (a == data.split("train")[1]).float().mean() < 0.5


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def test_train_loader_order_is_fixed_by_the_seed():
    data = fake()
    data.setup(8, 3)
    a = _batches(data.train_loader(seed=3))
    b = _batches(data.train_loader(seed=3))
    c = _batches(data.train_loader(seed=4))
    assert len(a) == len(b) == 60 // 16  # drop_last
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c, strict=True))
    # shuffled: not the stored order
    x, _ = data.split("train")
    assert not torch.equal(a[0][0], x[:16])


def test_train_loader_pairs_images_with_replacement_labels():
    data = fake()
    data.setup(8, 3)
    x, _ = data.split("train")
    ids = torch.arange(len(x))
    seen = []
    for xb, yb in data.train_loader(seed=0, labels=ids):
        assert torch.equal(xb, x[yb])
        seen += yb.tolist()
    assert len(set(seen)) == len(seen)


def test_train_loader_with_augmentation_keeps_shapes():
    data = fake(augment=True)
    data.setup(8, 3)
    xb, yb = next(iter(data.train_loader(seed=0)))
    assert xb.shape == (16, 3, 8, 8) and yb.shape == (16,)


def test_eval_loader_is_unshuffled_and_limited():
    data = fake(eval_batch_size=7)
    data.setup(8, 3)
    x, y = data.split("valid")
    loaded = _batches(data.eval_loader("valid", limit=20))
    assert [len(b[1]) for b in loaded] == [7, 7, 6]
    assert torch.equal(torch.cat([b[0] for b in loaded]), x[:20])
    assert torch.equal(torch.cat([b[1] for b in loaded]), y[:20])


# --- CIFAR-10 ------------------------------------------------------------------------------


def test_cifar10_without_root_names_dataset_root():
    data = CIFAR10Data(root=None)
    with pytest.raises(NasxError, match="dataset.root"):
        data.setup(32, 3)


@pytest.mark.parametrize("name", ["nowhere", "nowhere/cifar.npz"])
def test_cifar10_missing_root_names_dataset_root(tmp_path, name):
    data = CIFAR10Data(root=str(tmp_path / name))
    with pytest.raises(NasxError, match="dataset.root") as err:
        data.setup(32, 3)
    assert "nowhere" in str(err.value)


def test_cifar10_bad_npz_is_a_nasx_error(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(NasxError, match="npz"):
        CIFAR10Data(root=str(bad)).setup(32, 3)


@pytest.mark.slow
def test_cifar10_npz_subset():
    if not CIFAR_DIR.is_dir() or not list(CIFAR_DIR.glob("*.npz")):
        pytest.skip(f"no CIFAR-10 npz in {CIFAR_DIR}")
    data = CIFAR10Data(root=str(CIFAR_DIR), limit_train=500, limit_test=100)
    data.setup(32, 3)
    (trx, try_), (vax, vay), (tex, tey) = (data.split(s) for s in ("train", "valid", "test"))
    assert trx.shape == (250, 3, 32, 32) and vax.shape == (250, 3, 32, 32)
    assert tex.shape == (100, 3, 32, 32)
    for y in (try_, vay, tey):
        assert int(y.min()) >= 0 and int(y.max()) <= 9
    labels = torch.cat([try_, vay])
    assert len(set(labels.tolist())) == 10  # a random subset, not the first class only
    mean = torch.cat([trx, vax]).mean(dim=(0, 2, 3))
    assert mean.shape == (3,)
    assert torch.all(mean.abs() < 0.15), mean
    std = torch.cat([trx, vax]).std(dim=(0, 2, 3))
    assert torch.all((std > 0.8) & (std < 1.2)), std


def test_epoch_seeded_sampler_reproduces_any_epoch() -> None:
    from nasx.data.base import EpochSeededSampler

    a = EpochSeededSampler(50, seed=3)
    epochs = [list(a) for _ in range(3)]  # a plain loop: each pass is the next epoch
    assert epochs[0] != epochs[1] != epochs[2]
    assert all(sorted(e) == list(range(50)) for e in epochs)
    resumed = EpochSeededSampler(50, seed=3)
    resumed.set_epoch(2)  # what Lightning does when a run resumes at epoch 2
    assert list(resumed) == epochs[2]
    assert list(EpochSeededSampler(50, seed=4)) != epochs[0]
