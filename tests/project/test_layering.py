"""Style rule: a plain-PyTorch core; Lightning only inside nasx.lit and the pipeline."""

from __future__ import annotations

import subprocess
import sys

CORE = [
    "nasx.search_space",
    "nasx.data",
    "nasx.metric",
    "nasx.objective",
    "nasx.search",
    "nasx.supernet",
    "nasx.evaluator",
    "nasx.search_loop",
    "nasx.select",
    "nasx.plots",
    "nasx.diagrams",
    "nasx.report",
    "nasx.report_plots",
    "nasx.io",
    "nasx.config",
]


def test_core_does_not_import_lightning() -> None:
    code = ";".join(f"import {m}" for m in CORE) + (
        ";import sys;bad=[m for m in sys.modules if m.split('.')[0] in "
        "('lightning','pytorch_lightning')];print(bad);assert not bad"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_no_global_rng_or_eval_in_the_package() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "nasx"
    bad = re.compile(
        r"(^|[^.\w`])(eval|exec)\(|np\.random\.(seed|rand|randn|randint|choice|"
        r"shuffle|permutation|normal|uniform)\(|(^|[^.\w])random\.(random|randint|"
        r"choice|shuffle|sample|seed)\(|torch\.load\((?![^)]*weights_only=True)"
    )
    hits = [
        f"{p}:{i}"
        for p in root.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if bad.search(line)
    ]
    assert hits == []
