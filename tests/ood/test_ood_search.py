"""FlatNAS's OOD search (top1_robust on corrupted valid images) and CIFAR-C in the retrain stage."""

from __future__ import annotations

import io
import json
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch

from nasx import pipeline
from nasx.data import CIFAR10Data, FakeData
from nasx.metric import MetricContext, RobustnessMetric, Top1RobustMetric, TorchRunner
from nasx.ood import generate_corrupted, to_network_input, to_pixels
from nasx.search_space import NB201Space
from nasx.supernet import build_supernet

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(
        find_spec("imagecorruptions") is None, reason="imagecorruptions-imaug is not installed"
    ),
]

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"


def make_cifar10_npz(path: Path, n_train: int = 40, n_test: int = 10) -> Path:
    """A CIFAR-10 ``.npz`` in the nasx JPEG layout of ``shared/data/cifar10``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        blobs, offsets = [], [0]
        labels = np.arange(n) % 10
        for i in range(n):
            img = (rng.uniform(0, 1, (32, 32, 3)) * 60 + 20 * labels[i]).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=95)
            blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
            offsets.append(offsets[-1] + len(blobs[-1]))
        arrays[f"{split}_jpeg"] = np.concatenate(blobs)
        arrays[f"{split}_offsets"] = np.asarray(offsets, np.int64)
        arrays[f"{split}_labels"] = labels.astype(np.int64)
    np.savez(path, **arrays)
    return path


def _official(root: Path, n: int, labels: np.ndarray, corruption: str) -> None:
    """Official-layout files whose every pixel of test image i at severity s is 10 s + i."""
    root.mkdir(parents=True)
    arr = np.zeros((5 * n, 32, 32, 3), np.uint8)
    for s in range(5):
        arr[s * n : (s + 1) * n] = (10 * (s + 1) + np.arange(n))[:, None, None, None]
    np.save(root / f"{corruption}.npy", arr)
    np.save(root / "labels.npy", np.tile(labels, 5).astype(np.uint8))


def _context(tmp_path: Path) -> tuple[NB201Space, MetricContext, CIFAR10Data]:
    sp = NB201Space(num_classes=10, channels=4, cells_per_stage=1, image_size=32)
    data = CIFAR10Data(
        root=str(make_cifar10_npz(tmp_path / "c10.npz")),
        batch_size=8,
        eval_batch_size=8,
        corruption_cache=str(tmp_path / "cache"),
        corruption_seed=3,
    )
    data.setup(32, 3)
    torch.manual_seed(0)
    return sp, MetricContext(sp, build_supernet(sp).eval(), data, TorchRunner()), data


def test_top1_robust_scores_the_corrupted_valid_images(tmp_path: Path) -> None:
    sp, ctx, data = _context(tmp_path)
    arch = sp.parse(ARCH)
    kw = dict(sigma=0.0, draws=1, val_images=8, recal_images=16)
    corrupted = RobustnessMetric(
        valid_corruptions=["gaussian_noise", "fog"], valid_severities=[5], **kw
    )
    out = corrupted(arch, ctx, torch.Generator().manual_seed(1))

    # the loader is the valid images under each corruption, generated with the dataset's seed
    loader = ctx.corrupted_valid_loader(8, ["gaussian_noise", "fog"], [5])
    xs = torch.cat([x for x, _ in loader])
    assert len(xs) == 16
    x, y = data.split("valid", 8)
    pixels = to_pixels(x, data.mean, data.std)
    for k, c in enumerate(("gaussian_noise", "fog")):
        want = generate_corrupted(pixels, y.numpy(), c, 5, seed=3, dataset="cifar10-valid0")
        torch.testing.assert_close(
            xs[8 * k : 8 * (k + 1)], to_network_input(want.images, data.mean, data.std, 32)
        )
    assert len(list((tmp_path / "cache").glob("cifar10-valid0_*.npy"))) == 2

    # the score is the accuracy of the same calibrated candidate on those images
    net = ctx.calibrated(arch, torch.Generator().manual_seed(1), 16)
    acc = TorchRunner().evaluate(net, loader).accuracy
    assert out["accuracy"] == pytest.approx(acc) and out["robustness"] == 0.0
    clean = RobustnessMetric(**kw)(arch, ctx, torch.Generator().manual_seed(1))
    assert clean["accuracy"] == pytest.approx(
        TorchRunner().evaluate(net, ctx.valid_loader(8)).accuracy
    )

    # top1_robust passes the option on
    t1r = Top1RobustMetric(valid_corruptions=["fog"], valid_severities=[5], **kw)
    assert t1r(arch, ctx, torch.Generator().manual_seed(1))["accuracy"] == pytest.approx(
        TorchRunner().evaluate(net, ctx.corrupted_valid_loader(8, ["fog"], [5])).accuracy
    )


def test_corrupted_validation_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid_corruptions.*gaussian_noise"):
        RobustnessMetric(valid_corruptions=["rain"])
    with pytest.raises(ValueError, match="valid_severities"):
        RobustnessMetric(valid_corruptions=["fog"], valid_severities=[6])
    sp = NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8)
    d = FakeData(num_train=32, num_test=8, size=8, num_classes=4, batch_size=8)
    d.setup(8, 3)
    ctx = MetricContext(sp, build_supernet(sp).eval(), d, TorchRunner())
    with pytest.raises(ValueError, match="dataset=cifar10"):
        ctx.corrupted_valid_loader(8, ["fog"], [1])


def test_search_composes_with_corrupted_validation(compose_cfg) -> None:
    from nasx.config import build

    cfg = compose_cfg("metric=top1_robust", "metric.valid_corruptions=[fog,snow]")
    metric = build("metric", cfg.metric)
    assert metric.valid_corruptions == ["fog", "snow"] and metric.valid_severities == [3]


def test_retrain_reads_official_files_at_the_limit_test_positions(
    compose_cfg, tmp_path: Path
) -> None:
    npz = make_cifar10_npz(tmp_path / "c10.npz", n_train=40, n_test=10)
    labels = np.load(npz)["test_labels"]
    _official(tmp_path / "CIFAR-10-C", 10, labels, "contrast")
    cfg = compose_cfg(
        "experiment=smoke",
        "retrain=smoke",
        "stages=[retrain]",
        f"+arch='{ARCH}'",
        "space.image_size=32",
        "dataset=cifar10",
        f"dataset.root={npz}",
        "dataset.limit_test=6",
        f"dataset.corruptions={tmp_path / 'CIFAR-10-C'}",
        "retrain.corruptions=[contrast]",
        "retrain.severities=[2,4]",
    )
    run = tmp_path / "run"
    pipeline.run(cfg, run)
    ood = json.loads((run / "final" / "given_00" / "stats.json").read_text())["retrain"][
        "corruptions"
    ]
    assert ood["sources"] == {"contrast": "official"} and ood["n_images"] == 6
    assert sorted(ood["errors"]["contrast"], key=int) == ["2", "4"]
    assert ood["mce"] == pytest.approx(np.mean(list(ood["errors"]["contrast"].values())))
