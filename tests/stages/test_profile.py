"""The profile stage: counts of given architectures, no data and no supernet needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli


def _profile(tmp_path: Path, *args: str) -> dict:
    # dataset=cifar10 without a root: the stage must not read any data
    proc = run_cli(
        "stages=[profile]", "dataset=cifar10", "logger=none", *args, f"hydra.run.dir={tmp_path}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((tmp_path / "profile.json").read_text())


def test_rlnas_mobilenet_has_its_published_size(tmp_path: Path) -> None:
    out = _profile(tmp_path, "space=mobilenet", "+arch=RLNAS_MOBILENET", "profile.num_classes=1000")
    (entry,) = out["architectures"]
    assert entry["arch"] == "2 0 -1 2 2 0 2 4 0 4 4 2 4 2 4 2 0 0 0 2 2"  # B.8 model_id
    # RLNAS Table 5 / B.9: 5.3M parameters (5.256M counted), 473M FLOPs (473.2M by thop)
    assert entry["params"] == pytest.approx(5.256, abs=0.001)
    assert entry["lut_flops"] == pytest.approx(473.2, abs=0.05)
    # torch's counter prices the classifier in * out, thop (2 in - 1) * out
    assert entry["macs"] + (1728 - 1) * 1000 / 1e6 == pytest.approx(entry["lut_flops"], abs=1e-3)
    assert entry["activations"] > 0
    assert out["input_shape"] == [3, 224, 224]


def test_named_darts_cells_and_several_archs(tmp_path: Path) -> None:
    out = _profile(
        tmp_path,
        "space=darts",
        "+archs=[RLNAS_IMAGENET_600M,DARTS_V2]",
        "profile.num_classes=1000",
    )
    rl, v2 = out["architectures"]
    # RLNAS Table 3: 5.5M / 597M (B.9: 5.464M, 596.8M with thop's classifier rule)
    assert rl["params"] == pytest.approx(5.464, abs=0.001)
    assert rl["macs"] + (768 - 1) * 1000 / 1e6 == pytest.approx(596.8, abs=0.05)
    assert v2["params"] == pytest.approx(4.72, abs=0.01)  # DARTS V2 on ImageNet: 4.7M
    assert v2["arch"].startswith("Genotype(normal=[('sep_conv_3x3', 0)")


def test_rerun_skips_and_a_new_request_recounts(tmp_path: Path) -> None:
    first = _profile(tmp_path, "space=nb201", "+arch='(3,3,3,3,3,3)'")
    conv3 = "nor_conv_3x3"
    want = f"|{conv3}~0|+|{conv3}~0|{conv3}~1|+|{conv3}~0|{conv3}~1|{conv3}~2|"
    assert first["architectures"][0]["arch"] == want
    # NAS-Bench-201's all-conv3x3 cell at C=16, N=5, CIFAR-10: 1.53M params, 220.1M FLOPs
    assert first["architectures"][0]["params"] == pytest.approx(1.531, abs=0.001)
    assert first["architectures"][0]["macs"] == pytest.approx(220.11, abs=0.05)
    mtime = (tmp_path / "profile.json").stat().st_mtime_ns
    assert _profile(tmp_path, "space=nb201", "+arch='(3,3,3,3,3,3)'") == first
    assert (tmp_path / "profile.json").stat().st_mtime_ns == mtime
    second = _profile(tmp_path, "space=nb201", "+arch='(3,3,3,3,3,3)'", "profile.num_classes=100")
    assert second["architectures"][0]["params"] > first["architectures"][0]["params"]


def test_profile_needs_architectures_and_names_a_bad_one(tmp_path: Path) -> None:
    proc = run_cli("stages=[profile]", "logger=none", f"hydra.run.dir={tmp_path / 'a'}")
    assert proc.returncode == 2 and "+arch=<architecture>" in proc.stderr
    proc = run_cli(
        "stages=[profile]", "logger=none", "+arch=RLNAS_NOPE", f"hydra.run.dir={tmp_path / 'b'}"
    )
    assert proc.returncode == 2 and "cannot parse architecture" in proc.stderr
    assert not (tmp_path / "b" / "profile.json").exists()
