"""Image folders (ImageNet's layout), streamed from real image files on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nasx.data import ImageFolderData
from nasx.errors import NasxError
from tests.data.conftest import make_tree


def test_streams_the_imagenet_layout(tmp_path: Path) -> None:
    data = ImageFolderData(
        root=str(make_tree(tmp_path)), num_classes=3, batch_size=4, eval_batch_size=5,
        valid_fraction=1 / 3, num_workers=0,
    )  # fmt: skip
    data.setup(image_size=16, in_channels=3)
    assert data.train_size() == 12  # 18 training images, a third held out as valid
    x, y = next(iter(data.train_loader(seed=0)))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32
    assert set(y.tolist()) <= {0, 1, 2}
    test_x, test_y = data.split("test")
    assert test_x.shape == (6, 3, 16, 16) and sorted(test_y.tolist()) == [0, 0, 1, 1, 2, 2]
    assert data.split("test") is data.split("test")  # decoded once, then kept
    vx, _ = data.split("valid", limit=4)
    assert vx.shape == (4, 3, 16, 16)
    batches = list(data.eval_loader("valid"))
    assert sum(len(b[1]) for b in batches) == 6
    a = [b[1].tolist() for b in data.train_loader(seed=5)]
    b = [b[1].tolist() for b in data.train_loader(seed=5)]
    assert a == b  # shuffled by (seed, epoch)
    labels = data.random_labels(1)
    assert len(labels) == 12 and torch.equal(labels, data.random_labels(1))
    _, ry = next(iter(data.train_loader(seed=0, labels=labels)))
    assert set(ry.tolist()) <= {0, 1, 2}


def test_missing_or_wrong_folders_name_the_layout(tmp_path: Path) -> None:
    with pytest.raises(NasxError, match="dataset.root is not set"):
        ImageFolderData(num_classes=3).setup(16, 3)
    with pytest.raises(NasxError, match="train/<class>/<image>"):
        ImageFolderData(root=str(tmp_path / "nowhere"), num_classes=3).setup(16, 3)
    root = make_tree(tmp_path / "tree")
    with pytest.raises(NasxError, match="holds 3 class folders but dataset.num_classes=1000"):
        ImageFolderData(root=str(root), num_classes=1000, num_workers=0).setup(16, 3)
