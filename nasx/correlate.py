"""The correlate stage: score a set of architectures and rank-correlate with the ground truth.

RLNAS's correlation step (Kendall tau of the angle against NAS-Bench-201 accuracy over every
cell), for any metric and any column of the space's benchmark table. Scores are appended to a
journal as they are computed, so a killed stage resumes where it stopped.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasx.errors import NasxError
from nasx.evaluator import Evaluator, JournaledEvaluation
from nasx.io import Journal, write_json_atomic, write_text_atomic
from nasx.search_space.base import Architecture, SearchSpace

log = logging.getLogger(__name__)

ARCHS_FORMS = (
    "sample:N (N >= 1 distinct architectures drawn uniformly), all (every architecture of an "
    "enumerable space), or the path of a text file with one architecture per line (or of an "
    "NSGANetV2/CNAS iter_<t>.stats archive)"
)
#: the ground-truth column drawn in the scatter plot when the space has it
PLOT_COLUMN = "cifar10_test_acc_200ep"
#: scores are cheap (a table lookup can be microseconds): fsync the journal in batches
FSYNC_EVERY = 256


@dataclass(frozen=True)
class ArchsSpec:
    """A parsed ``correlate.archs`` value."""

    kind: str  # "sample", "all" or "file"
    n: int = 0
    path: Path | None = None


def parse_archs_spec(text: str) -> ArchsSpec:
    """Parse ``correlate.archs``; raises `NasxError` naming the accepted forms."""
    text = text.strip()
    if text == "all":
        return ArchsSpec("all")
    if text.startswith("sample:"):
        raw = text.partition(":")[2]
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            raise NasxError(
                f"correlate.archs={text!r}: N must be an integer >= 1; use {ARCHS_FORMS}"
            )
        return ArchsSpec("sample", n=n)
    path = Path(text).expanduser()
    if not text or not path.is_file():
        raise NasxError(f"correlate.archs={text!r} is not a file; use {ARCHS_FORMS}")
    return ArchsSpec("file", path=path.resolve())


def choose_archs(text: str, space: SearchSpace, seed: int) -> list[Architecture]:
    """The architectures ``correlate.archs`` names, distinct, in a fixed order."""
    spec = parse_archs_spec(text)
    if spec.kind == "file":
        assert spec.path is not None
        return _read_arch_file(spec.path, space)
    every = space.enumerate()
    if spec.kind == "all":
        if every is None:
            raise NasxError(
                f"correlate.archs=all: {type(space).__name__} cannot enumerate its "
                "architectures; use sample:N or a file of architectures"
            )
        return every
    rng = np.random.default_rng(seed)
    if every is not None:
        if spec.n > len(every):
            raise NasxError(
                f"correlate.archs=sample:{spec.n} but the space holds {len(every)} "
                "architectures: use correlate.archs=all"
            )
        return [every[i] for i in sorted(rng.choice(len(every), size=spec.n, replace=False))]
    seen: dict[str, Architecture] = {}
    tries = 0
    while len(seen) < spec.n:
        arch = space.sample(rng)
        seen.setdefault(space.to_str(arch), arch)
        tries += 1
        if tries > 100 * spec.n:
            raise NasxError(
                f"correlate.archs=sample:{spec.n}: found only {len(seen)} distinct "
                "architectures; ask for fewer"
            )
    return list(seen.values())


def _archive_entries(path: Path) -> list[str] | None:
    """The subnets of an NSGANetV2/CNAS ``iter_<t>.stats`` file as JSON strings (else ``None``).

    Such a file is one JSON object whose ``archive`` lists ``[subnet, top1_err, sec_obj]``
    (reference §4).
    """
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(content, dict) or not isinstance(content.get("archive"), list):
        return None
    return [json.dumps(entry[0]) for entry in content["archive"] if entry]


def _read_arch_file(path: Path, space: SearchSpace) -> list[Architecture]:
    """Architectures of a text file (one per line) or of an ``iter_<t>.stats`` archive."""
    archs: dict[str, Architecture] = {}
    entries = _archive_entries(path)
    lines = entries if entries is not None else path.read_text().splitlines()
    for lineno, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            arch = space.parse(text)
        except NasxError as exc:
            where = "entry" if entries is not None else "line"
            raise NasxError(f"correlate.archs file {path}, {where} {lineno}: {exc}") from None
        archs.setdefault(space.to_str(arch), arch)
    if not archs:
        raise NasxError(f"correlate.archs file {path} names no architecture: one per line")
    return list(archs.values())


def score_archs(
    archs: list[Architecture], evaluator: Evaluator, out_dir: Path, progress: bool
) -> list[dict[str, Any]]:
    """Score ``archs`` (those already in ``scores.jsonl`` are read back); one record each."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    journal = Journal(out_dir / "scores.jsonl", fsync_every=FSYNC_EVERY)
    keep = ("arch", "genes", "failed", "metric", "error", "seconds")
    journaled = JournaledEvaluation(evaluator, journal, keep=keep)
    keys = [evaluator.space.to_str(a) for a in archs]
    done = sum(k in journaled.cached for k in keys)
    if journaled.cached:
        log.info(
            "correlate: %d of %d scores found in %s, %d to compute",
            done,
            len(archs),
            journal.path,
            len(archs) - done,
        )
    bar = Progress(
        TextColumn("[bold]correlate"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
    )
    try:
        with bar:
            task = bar.add_task("correlate", total=len(archs))
            return journaled(archs, on_record=lambda _i, _r: bar.advance(task))
    finally:
        journal.close()


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def correlations(
    records: list[dict[str, Any]],
    truth: list[dict[str, float]],
    metric: str,
    higher_is_better: bool,
) -> dict[str, dict[str, Any]]:
    """Kendall tau / Spearman rho (with p-values) of the oriented score against each column.

    The score is multiplied by -1 when lower is better, so a positive value means the metric
    ranks architectures like the column. Failed scores and NaN entries are dropped per column.
    ``kendall_tau_rlnas`` is RLNAS's form: tau between stable descending ranks (ties broken in
    evaluation order).
    """
    from scipy import stats

    sign = 1.0 if higher_is_better else -1.0
    score = np.array(
        [np.nan if r.get("failed") else sign * float(r["metric"][metric]) for r in records],
        dtype=float,
    )
    columns = list(dict.fromkeys(k for row in truth for k in row))
    out: dict[str, dict[str, Any]] = {}
    for col in columns:
        gt = np.array([row.get(col, np.nan) for row in truth], dtype=float)
        ok = np.isfinite(score) & np.isfinite(gt)
        x, y = score[ok], gt[ok]
        entry: dict[str, Any] = {"n": int(ok.sum())}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input: NaN, reported as null
            if len(x) >= 2:
                kt = stats.kendalltau(x, y)
                sr = stats.spearmanr(x, y)
                rk = stats.kendalltau(_stable_ranks(x), _stable_ranks(y))
                vals = (kt.statistic, kt.pvalue, sr.statistic, sr.pvalue, rk.statistic)
            else:
                vals = (None,) * 5
        for name, v in zip(
            ("kendall_tau", "kendall_p", "spearman_rho", "spearman_p", "kendall_tau_rlnas"),
            vals,
            strict=True,
        ):
            entry[name] = _finite(v)
        out[col] = entry
    return out


def _stable_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N of a descending stable sort (RLNAS ``cal_kendall_tau``)."""
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks


def _write_csv(
    path: Path, records: list[dict[str, Any]], truth: list[dict[str, float]], metric: str
) -> None:
    diag = list(dict.fromkeys(k for r in records for k in r.get("metric", {}) if k != metric))
    columns = list(dict.fromkeys(k for row in truth for k in row))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["arch", "score", *diag, "failed", "error", *columns])
    for rec, row in zip(records, truth, strict=True):
        m = rec.get("metric", {})
        writer.writerow(
            [
                rec["arch"],
                "" if rec.get("failed") else m.get(metric, ""),
                *(m.get(k, "") for k in diag),
                int(bool(rec.get("failed"))),
                rec.get("error", ""),
                *(row.get(k, "") for k in columns),
            ]
        )
    write_text_atomic(path, buf.getvalue())


def plot_correlation(
    records: list[dict[str, Any]],
    truth: list[dict[str, float]],
    metric: str,
    column: str,
    tau: float | None,
    path: Path,
) -> Path:
    """Scatter of the metric against one ground-truth column, tau in the title (RLNAS style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [
        (float(r["metric"][metric]), float(row[column]))
        for r, row in zip(records, truth, strict=True)
        if not r.get("failed") and column in row
    ]
    xy = np.array(pts, dtype=float).reshape(-1, 2)
    xy = xy[np.isfinite(xy).all(axis=1)]
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    ax.scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.4)
    if len(xy):
        top = int(np.argmax(xy[:, 0]))
        ax.scatter(xy[top, 0], xy[top, 1], s=40, color="C3", label=f"top {metric}")
        ax.legend()
    tau_text = "n/a" if tau is None else f"{tau:.3f}"
    ax.set_title(f"{metric} vs {column}: Kendall tau = {tau_text} (n = {len(xy)})")
    ax.set_xlabel(metric)
    ax.set_ylabel(column)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def run_correlate(
    archs: list[Architecture],
    spec: dict[str, Any],
    evaluator: Evaluator,
    run_dir: Path,
    progress: bool,
    logger: Any = None,
) -> dict[str, Any]:
    """Run (or resume) the correlate stage; writes ``correlate/`` and ``plots/correlation.png``.

    Args:
        archs: the architectures to score.
        spec: ``correlate`` settings, stored in the marker: a different set re-runs the stage
            (scores already in the journal are reused).
        evaluator: scores architectures (no costs).
        run_dir: the run directory.
        progress: show a progress bar.
        logger: a Lightning logger for ``correlate/tau_<column>``, or ``None``.
    """
    cdir = run_dir / "correlate"
    done = cdir / "done.json"
    summary_path = cdir / "summary.json"
    if done.exists() and summary_path.exists() and json.loads(done.read_text()) == spec:
        log.info("correlate: %s exists, skipping", done)
        return dict(json.loads(summary_path.read_text()))
    done.unlink(missing_ok=True)
    space, metric = evaluator.space, evaluator.metric
    records = score_archs(archs, evaluator, cdir, progress)
    truth = [space.ground_truth(space.parse(r["arch"])) for r in records]
    cols = correlations(records, truth, metric.name, metric.higher_is_better)
    n_failed = sum(bool(r.get("failed")) for r in records)
    summary: dict[str, Any] = {
        "n": len(records) - n_failed,
        "n_archs": len(records),
        "n_failed": n_failed,
        "metric": metric.name,
        "higher_is_better": bool(metric.higher_is_better),
        "archs": spec.get("archs"),
        "columns": cols,
    }
    _write_csv(cdir / "scores.csv", records, truth, metric.name)
    if cols:
        column = PLOT_COLUMN if PLOT_COLUMN in cols else next(iter(cols))
        summary["plot"] = str(
            plot_correlation(
                records,
                truth,
                metric.name,
                column,
                cols[column]["kendall_tau"],
                run_dir / "plots" / "correlation.png",
            )
        )
    else:
        log.warning("correlate: %s has no ground-truth table; scores only", type(space).__name__)
    write_json_atomic(summary_path, summary)
    write_json_atomic(done, spec)
    taus = {c: v["kendall_tau"] for c, v in cols.items()}
    log.info(
        "correlate: %d architectures (%d failed), %s Kendall tau: %s",
        len(records),
        n_failed,
        metric.name,
        ", ".join(f"{c}={'nan' if t is None else f'{t:.3f}'}" for c, t in taus.items()),
    )
    if logger is not None:
        values = {f"correlate/tau_{c}": t for c, t in taus.items() if t is not None}
        if values:
            logger.log_metrics(values)
            logger.save()
    return summary


__all__ = ["ARCHS_FORMS", "choose_archs", "correlations", "parse_archs_spec", "run_correlate"]
