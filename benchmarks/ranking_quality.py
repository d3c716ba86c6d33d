"""How well each metric ranks NAS-Bench-201 cells: Kendall tau against 200-epoch accuracy.

Trains one SPOS supernet (real labels) and one RLNAS supernet (random labels) on a CIFAR-10
subset within a stated CPU budget, then runs nasx's ``correlate`` stage on the same sampled
cells for every supernet metric (on both supernets where the method uses it) and for every
training-free proxy (fresh initialisation), and collects Kendall tau / Spearman rho against
``cifar10_test_acc_200ep`` from each ``correlate/summary.json``.

Usage::

    WANDB_MODE=disabled .venv/bin/python benchmarks/ranking_quality.py [--quick] [--write-results]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import nasx.config  # noqa: F401  (schema and resolvers)
from nasx import pipeline

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
CIFAR = ROOT.parent / "shared" / "data" / "cifar10"
START, END = "<!-- ranking_quality:start -->", "<!-- ranking_quality:end -->"
COLUMN = "cifar10_test_acc_200ep"
PROXIES = [
    "synflow",
    "jacov",
    "nwot",
    "snip",
    "grad_norm",
    "grasp",
    "fisher",
    "epe_nas",
    "l2_norm",
    "params",
    "flops",
]


def run(overrides: list[str], run_dir: Path) -> float:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    GlobalHydra.instance().clear()
    t = time.perf_counter()
    pipeline.run(cfg, run_dir)
    return time.perf_counter() - t


def summary(run_dir: Path) -> dict[str, Any]:
    s = json.loads((run_dir / "correlate" / "summary.json").read_text())
    col = s["columns"][COLUMN] if "columns" in s else s[COLUMN]
    return {"n": s.get("n"), "tau": col["kendall_tau"], "rho": col["spearman_rho"]}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="tiny settings (a smoke check)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/nasx_ranking_quality"))
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    n, epochs, limit = (20, 1, 1000) if args.quick else (200, 12, 10000)
    common = [
        "dataset=cifar10",
        f"dataset.root={CIFAR}",
        f"dataset.limit_train={limit}",
        "dataset.limit_test=500",
        "space=nb201_cpu",
        "space.image_size=32",
        "logger=none",
        "progress=false",
        f"correlate.archs=sample:{n}",
        "correlate.seed=0",
    ]
    val = ["metric.val_images=1000", "metric.recal_images=500"]
    rows: list[dict[str, Any]] = []
    for sup in ("spos", "rlnas"):
        sdir = args.out / f"supernet_{sup}"
        secs = run(
            [
                *common,
                f"supernet={sup}",
                f"supernet.epochs={epochs}",
                "metric=angle",
                "stages=[supernet,correlate]",
            ],
            sdir,
        )
        rows.append({"metric": "angle", "supernet": sup, "seconds": secs, **summary(sdir)})
        if sup == "rlnas":
            continue  # RLNAS uses the angle only; accuracy/flatness need real labels
        ckpt = sdir / "supernet" / "final.ckpt"
        for metric, extra in (("accuracy", val), ("flatness", val), ("angle_flatness", val)):
            d = args.out / f"{metric}_{sup}"
            secs = run(
                [
                    *common,
                    f"supernet={sup}",
                    f"supernet.epochs={epochs}",
                    f"metric={metric}",
                    *extra,
                    "stages=[correlate]",
                    f"supernet.checkpoint={ckpt}",
                ],
                d,
            )
            rows.append({"metric": metric, "supernet": sup, "seconds": secs, **summary(d)})
    for proxy in PROXIES:
        d = args.out / f"proxy_{proxy}"
        secs = run([*common, f"metric={proxy}", "stages=[correlate]"], d)
        rows.append(
            {"metric": proxy, "supernet": "none (fresh init)", "seconds": secs, **summary(d)}
        )
    table = [
        "| metric | supernet | cells | Kendall tau | Spearman rho | seconds |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        table.append(
            f"| {r['metric']} | {r['supernet']} | {r['n']} | {r['tau']:.3f} | "
            f"{r['rho']:.3f} | {r['seconds']:.0f} |"
        )
    text = "\n".join(table)
    print(text)
    if args.write_results:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")),
            platform.processor(),
        )
        section = "\n".join(
            [
                START,
                "## Ranking quality on NAS-Bench-201 (CIFAR-10): Kendall tau vs 200-epoch accuracy",
                "",
                f"- Date: 2026-11-23; machine: {os.cpu_count()}-core CPU ({model}), torch "
                f"{torch.__version__}",
                "- Command: `WANDB_MODE=disabled python benchmarks/ranking_quality.py "
                "--write-results`",
                f"- Setting: {n} cells sampled uniformly (seed 0), the same for every metric; "
                f"supernets `space=nb201_cpu` (C=16, N=1) at 32 px trained {epochs} epochs on the "
                f"train half of a {limit}-image CIFAR-10 subset (JPEG q75 copy), batch 64, CPU; "
                "accuracy/flatness on 1,000 valid images after recalibrating BN on 500; proxies on "
                "one batch of 64 with fresh weights of the same network. Tau from scipy against "
                f"`{COLUMN}` of the packaged table.",
                "",
                text,
                "",
                "For scale (issue 4): parameters alone reach about 0.56 on this space with the "
                "paper network, the best published training-free proxies about 0.59, and RLNAS "
                "reports 0.51 for the angle after 250 GPU epochs.",
                END,
            ]
        )
        old = RESULTS.read_text() if RESULTS.exists() else "# nasx benchmark results\n"
        if START in old:
            head, rest = old.split(START, 1)
            new = head + section + rest.split(END, 1)[1]
        else:
            new = old.rstrip("\n") + "\n\n" + section + "\n"
        RESULTS.write_text(new)
    return rows


if __name__ == "__main__":
    main()
