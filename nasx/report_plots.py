"""Figures of a sweep report (`nasx.report`): one panel or bar per method group."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nasx.report import Job, best_found  # noqa: E402


def _save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.tight_layout()
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _short(label: str, width: int = 40) -> str:
    """``label`` cut to ``width`` characters (long override lists would crowd the figure)."""
    return label if len(label) <= width else label[: width - 3] + "..."


def _groups(jobs: list[Job]) -> dict[str, list[Job]]:
    out: dict[str, list[Job]] = {}
    for job in sorted(jobs, key=lambda j: (j.seed is None, j.seed or 0)):
        out.setdefault(job.group, []).append(job)
    return out


def _points(job: Job, truth: str) -> tuple[list[float], list[float]]:
    """``(metric, ground truth)`` pairs: the correlate scores, else the search archive."""
    if job.scores:
        pairs = [(s, row[truth]) for s, row in job.scores if truth in row]
    else:
        metric = job.metric or ""
        pairs = [
            (float(r["metric"][metric]), float(r["ground_truth"][truth]))
            for r in job.archive
            if metric in (r.get("metric") or {}) and truth in (r.get("ground_truth") or {})
        ]
    pairs = [(x, y) for x, y in pairs if math.isfinite(x) and math.isfinite(y)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_metric_vs_truth(jobs: list[Job], truth: str, path: Path) -> Path | None:
    """One panel per method group: each job's metric against ``truth``, coloured by seed.

    ``None`` (nothing written) when no job has both a metric value and its ground truth.
    """
    groups = {g: js for g, js in _groups(jobs).items() if any(_points(j, truth)[0] for j in js)}
    if not groups:
        return None
    n = len(groups)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), dpi=110, squeeze=False)
    for ax, (name, members) in zip(axes.flat, groups.items(), strict=False):
        taus = []
        for k, job in enumerate(members):
            x, y = _points(job, truth)
            ax.scatter(x, y, s=8, alpha=0.5, color=f"C{k % 10}", label=f"seed {job.seed}")
            tau = (job.correlate.get("columns") or {}).get(truth, {}).get("kendall_tau")
            if tau is not None:
                taus.append(float(tau))
        tau_text = f"\nKendall tau {np.mean(taus):.3f}" if taus else ""
        ax.set_title(f"{_short(name)}{tau_text}", fontsize=8)
        ax.set_xlabel(members[0].metric or "metric", fontsize=8)
        ax.set_ylabel(truth, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return _save(fig, path)


def plot_hypervolume_curves(jobs: list[Job], path: Path) -> Path | None:
    """Hypervolume against evaluations per method group: mean over seeds, ± one std band.

    Curves are aligned by iteration (the jobs of a group share their schedule) and cut to the
    shortest. ``None`` when no job has a search iteration.
    """
    groups = {g: js for g, js in _groups(jobs).items() if any(j.hv_curve for j in js)}
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for k, (name, members) in enumerate(groups.items()):
        curves = [j.hv_curve for j in members if j.hv_curve]
        length = min(len(c) for c in curves)
        n = np.array([[c[i][0] for i in range(length)] for c in curves], dtype=float).mean(0)
        hv = np.array([[c[i][1] for i in range(length)] for c in curves], dtype=float)
        mean, std = hv.mean(0), hv.std(0)
        ax.plot(
            n, mean, "o-", ms=3, color=f"C{k % 10}", label=f"{_short(name)} ({len(curves)} seeds)"
        )
        ax.fill_between(n, mean - std, mean + std, color=f"C{k % 10}", alpha=0.2)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("hypervolume (fraction of the reference box)")
    ax.set_title("hypervolume per method: mean ± std over seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_best_found(
    jobs: list[Job], stats: list[dict[str, Any]], truth: str | None, path: Path
) -> Path | None:
    """Best-found value per method group: mean with its 95 % t-interval, and each seed.

    The value is the ground truth ``truth`` of each job's best record where the space has one,
    else the metric. ``None`` when no job found anything.
    """
    groups = _groups(jobs)
    rows = [s for s in stats if s["n_values"] > 0]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(rows) + 2), 4.5), dpi=110)
    shown: list[float] = []
    for i, row in enumerate(rows):
        values = [v for v in (best_found(j, truth) for j in groups[row["group"]]) if v is not None]
        mean, low, high = row["best_mean"], row["best_ci95_low"], row["best_ci95_high"]
        err = None if math.isnan(low) else [[mean - low], [high - mean]]
        ax.bar(i, mean, color=f"C{i % 10}", alpha=0.6, yerr=err, capsize=6)
        ax.scatter([i] * len(values), values, color="black", s=10, zorder=3)
        shown += [v for v in (*values, low, high) if math.isfinite(v)]
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([_short(r["group"], 30) for r in rows], rotation=20, ha="right", fontsize=7)
    lo, hi = min(shown), max(shown)
    pad = 0.15 * (hi - lo) or 1.0
    ax.set_ylim(lo - pad, hi + pad)  # the differences, not the bars' common base
    ax.set_ylabel(truth if truth is not None else "best metric value")
    ax.set_title("best found per method: mean and 95% t-interval over seeds", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)
