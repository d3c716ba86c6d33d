"""CIFAR-C generation cost: seconds per 10,000 images for each of the 15 corruptions.

Corrupts the first ``--images`` test images of the shared CIFAR-10 copy (real 32x32 images;
synthetic ones with ``--quick``) at severity 3 with `nasx.ood.corrupt_images` and scales the
time to 10,000 images, the size of the CIFAR-10/100 test set; a whole CIFAR-10-C (15
corruptions x 5 severities) costs about 5 x the sum. Single process; numba's one-off
compilation (glass blur) is excluded by a warm-up call.

Run: ``python benchmarks/corruption_cost.py --write-results`` (``--quick`` for a smoke check).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
from _results import cpu_clock, cpu_model, other_cores, write_section

from nasx.data.cifar10 import _decode_jpegs
from nasx.ood import CORRUPTIONS, corrupt_images, corruption_rng

RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- corruption_cost:start -->", "<!-- corruption_cost:end -->"
CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def test_images(n: int, quick: bool) -> np.ndarray:
    """The first ``n`` CIFAR-10 test images as uint8 (N, 32, 32, 3)."""
    files = sorted(CIFAR.glob("*.npz"))
    if quick or not files:
        return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    with np.load(files[0]) as z:
        return _decode_jpegs(z["test_jpeg"], z["test_offsets"], np.arange(n))


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--quick", action="store_true", help="8 synthetic images, 2 corruptions")
    p.add_argument("--write-results", action="store_true")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    n = 8 if args.quick else args.images
    images = test_images(n, args.quick)
    names = CORRUPTIONS[:2] if args.quick else CORRUPTIONS
    for name in names:  # warm-up: numba compilation, lazy imports
        corrupt_images(images[:2], name, 3, corruption_rng(0, name, 3))
    clock = cpu_clock()
    per_10k: dict[str, float] = {}
    for name in names:
        t0 = time.perf_counter()
        corrupt_images(images, name, 3, corruption_rng(0, name, 3))
        per_10k[name] = (time.perf_counter() - t0) * 10_000 / n
    load = other_cores(clock)
    total = sum(per_10k.values())
    print({k: round(v, 1) for k, v in per_10k.items()}, f"sum {total:.0f} s")
    if args.write_results:
        rows = [f"| {k} | {v:.1f} |" for k, v in per_10k.items()]
        text = "\n".join(
            [
                START,
                "## CIFAR-C generation cost (seconds per 10,000 images, severity 3)",
                "",
                f"`python benchmarks/corruption_cost.py --write-results` on {date.today()}, "
                f"{cpu_model()}, one process, {n} real CIFAR-10 test images timed and scaled; "
                f"other processes kept {0.0 if load is None else load:.2f} cores busy.",
                "",
                "| corruption | s / 10,000 images |",
                "|---|---:|",
                *rows,
                f"| **all 15** | **{total:.0f}** |",
                "",
                f"A full CIFAR-10-C (15 corruptions x 5 severities) is about {5 * total / 60:.0f}"
                " min on one core; generated sets are cached on disk (`nasx.ood`).",
                END,
            ]
        )
        write_section(args.results, START, END, text)
    return per_10k


if __name__ == "__main__":
    main(sys.argv[1:])
