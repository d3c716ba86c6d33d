"""PNG figures of a search: Pareto front and hypervolume curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nasx.hypervolume import non_dominated  # noqa: E402


def plot_pareto(records: list[dict[str, Any]], names: list[str], path: Path) -> Path:
    """Scatter of every evaluated architecture with the non-dominated front highlighted.

    With one objective the metric is drawn against evaluation order.
    """
    ok = [r for r in records if not r.get("failed")]
    F = np.array([r["F"] for r in ok]).reshape(len(ok), len(names))
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    metric = names[0].lstrip("-")
    y = -F[:, 0] if names[0].startswith("-") else F[:, 0]
    if F.shape[1] == 1:
        ax.plot(np.arange(len(y)), y, ".", alpha=0.6, label="evaluated")
        ax.plot(
            np.arange(len(y)),
            np.maximum.accumulate(y) if names[0].startswith("-") else np.minimum.accumulate(y),
            "-",
            color="C3",
            label="best so far",
        )
        ax.set_xlabel("evaluation")
    else:
        front = non_dominated(F) if len(F) else np.zeros(0, dtype=int)
        front = front[np.argsort(F[front, 1])]
        ax.scatter(F[:, 1], y, s=12, alpha=0.5, label="evaluated")
        ax.plot(F[front, 1], y[front], "o-", color="C3", label="non-dominated")
        ax.set_xlabel(names[1])
    ax.set_ylabel(metric)
    ax.set_title(f"{len(ok)} architectures")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_hypervolume(history: list[tuple[int, float]], path: Path) -> Path:
    """Hypervolume after each iteration, against the number of evaluations.

    The values are NSGANetV2/CNAS's: the dominated fraction of the reference box.
    """
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    if history:
        n, hv = zip(*history, strict=True)
        ax.plot(n, hv, "o-")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("hypervolume (fraction of the reference box)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
