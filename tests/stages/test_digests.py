"""Refactoring changes no result: archive digests of three fixed runs.

Recorded on main before the supernet-seam redesign (commit fa6788b: smoke b88ec47e89b08542,
DARTS smoke 203a92ac90d4438f, main 25654f8a95953fd1) and identical after it (b70f4fa). They
were re-recorded once, on purpose, when BN recalibration began to read a loader shorter than
``recal_images`` again instead of stopping early (the tiny datasets of these runs hold fewer
batches than GeNAS's 850 images; checked: with the old recalibration the smoke digest is
still b88ec47e89b08542). A digest is the SHA-256 of every evaluation's arch, ``F``, ``G`` and
metric values (6 significant digits) in journal order, plus the selected architectures.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli

#: (overrides, digest) of the runs whose archives must never change by refactoring
RECORDED = {
    "smoke": (["experiment=smoke"], "fc2efbe385d68e88"),
    "darts_smoke": (["experiment=smoke", "space=darts_cpu"], "b3bce254ca28bcd9"),
    "main": (["logger=none", "progress=false"], "bcda8a6590e9e0ee"),
}


def _sig(x: Any) -> Any:
    if isinstance(x, float):
        return float(f"{x:.6g}")
    if isinstance(x, list):
        return [_sig(v) for v in x]
    if isinstance(x, dict):
        return {k: _sig(v) for k, v in sorted(x.items())}
    return x


def archive_digest(run_dir: Path) -> str:
    """The digest of a finished run directory (see the module docstring)."""
    lines = (run_dir / "search" / "evaluations.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines if line.strip()]
    keep = [[r["arch"], _sig(r["F"]), _sig(r.get("G")), _sig(r.get("metric"))] for r in recs]
    selection = json.loads((run_dir / "final" / "selection.json").read_text())
    chosen = [s["arch"] for s in selection["selected"]]
    return hashlib.sha256(json.dumps([keep, chosen]).encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    "name",
    [
        "smoke",
        "darts_smoke",
        pytest.param("main", marks=pytest.mark.slow),  # the main job: ~1.5 min on 2 cores
    ],
)
def test_archive_digest_is_unchanged(name: str, tmp_path: Path) -> None:
    overrides, digest = RECORDED[name]
    proc = run_cli(*overrides, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert archive_digest(tmp_path) == digest
