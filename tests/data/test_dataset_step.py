"""Every ``dataset=`` option trains a tiny network one step on a batch of its train loader.

Each option is composed from ``conf/`` (batch 4, no workers), pointed at a tiny copy in its
real on-disk format (`tests.data.conftest`), set up, and one SGD step of a small network is
taken on the first training batch: the batch must match the dataset's classes and the step
must change every weight.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from torch import nn

from nasx.config import build
from nasx.data import ImageData
from tests.conftest import CONF
from tests.data.conftest import (
    make_aircraft,
    make_cifar10,
    make_cifar10_npz,
    make_cifar100,
    make_cinic10,
    make_dtd,
    make_flowers102,
    make_imagenet,
    make_imagenette,
    make_pets,
    make_stl10,
    make_svhn,
    make_tree,
)

pytestmark = pytest.mark.usefixtures("one_thread", "no_md5")

OPTIONS = sorted(p.stem for p in (CONF / "dataset").glob("*.yaml"))
BATCH = 4


def _folder(root: Path) -> Path:
    return make_tree(root, classes=10, per_class=2, size=12)  # folder.yaml: 10 classes


#: option -> (tiny copy of its files, or None when it needs none; its classes)
DATASETS: dict[str, tuple[Callable[[Path], Path] | None, int]] = {
    "cifar10": (make_cifar10, 10),
    "cifar100": (make_cifar100, 100),
    "cinic10": (make_cinic10, 10),
    "digits": (None, 10),
    "dtd": (make_dtd, 47),
    "fake": (None, 4),
    "fgvc_aircraft": (make_aircraft, 100),
    "flowers102": (make_flowers102, 102),
    "folder": (_folder, 10),
    "imagenet": (make_imagenet, 1000),
    "imagenette": (make_imagenette, 10),
    "oxford_pets": (make_pets, 37),
    "stl10": (make_stl10, 10),
    "svhn": (make_svhn, 10),
}
#: every option, and CIFAR-10 from nasx's JPEG .npz as well as torchvision's batches
CASES = [(o, DATASETS[o][0]) for o in OPTIONS] + [("cifar10", make_cifar10_npz)]
IDS = [*OPTIONS, "cifar10-npz"]


def test_every_dataset_has_a_copy() -> None:
    assert set(DATASETS) == set(OPTIONS)


def tiny_net(in_channels: int, num_classes: int) -> nn.Module:
    """Conv, BN, ReLU, global pooling and a linear classifier: every weight gets a gradient."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )


@pytest.mark.parametrize(("option", "make"), CASES, ids=IDS)
def test_dataset_trains_one_step(
    compose_cfg: Callable[..., DictConfig],
    tmp_path: Path,
    option: str,
    make: Callable[[Path], Path] | None,
) -> None:
    overrides = [f"dataset={option}", f"dataset.batch_size={BATCH}", "dataset.num_workers=0"]
    if make is not None:
        overrides.append(f"dataset.root={make(tmp_path / 'data')}")
    cfg = compose_cfg(*overrides)
    data: ImageData = build("dataset", cfg.dataset)
    classes = DATASETS[option][1]
    assert data.num_classes == classes
    size = 16 if option == "digits" else 32  # the default job's 16 px; CIFAR's 32 otherwise
    data.setup(size, 3)
    x, y = next(iter(data.train_loader(seed=0)))
    assert x.shape == (BATCH, 3, size, size) and x.dtype == torch.float32
    assert bool(torch.isfinite(x).all()) and float(x.std()) > 0
    assert y.shape == (BATCH,) and y.dtype == torch.int64
    assert int(y.min()) >= 0 and int(y.max()) < classes

    torch.manual_seed(0)
    net = tiny_net(3, classes)
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    logits = net(x)
    assert logits.shape == (BATCH, classes)
    loss = nn.functional.cross_entropy(logits, y)
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True))
