"""The packaged NAS-Bench-201 table (accuracies and device latencies of all 15,625 cells)."""

from __future__ import annotations

import csv
import gzip
from functools import lru_cache
from importlib import resources

TABLE_FILE = "nb201_acc_latency.csv.gz"


@lru_cache(maxsize=1)
def load_table() -> tuple[dict[str, int], list[dict[str, float]]]:
    """``(index of each arch string, numeric columns of each row)``; read once per process."""
    ref = resources.files("nasx.search_space") / "tables" / TABLE_FILE
    index: dict[str, int] = {}
    rows: list[dict[str, float]] = []
    with ref.open("rb") as raw, gzip.open(raw, "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            i = int(row.pop("nb201_index"))
            if i != len(rows):
                raise RuntimeError(f"{TABLE_FILE} is not in index order at row {len(rows)}")
            index[row.pop("arch_str")] = i
            rows.append({k: float(v) for k, v in row.items()})
    return index, rows
