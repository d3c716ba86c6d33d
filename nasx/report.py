"""Aggregate a Hydra sweep (``multirun/<date>/<time>``) into one table and figures.

A job is a sub-directory holding ``.hydra/overrides.yaml``; what it ran is read back from its
files only: ``.hydra/config.yaml`` (seed), ``.hydra/hydra.yaml`` (the group choices),
``search/iter_<k>.json`` (hypervolume per iteration, archive), ``search/done.json`` (best
record), ``correlate/summary.json`` and ``scores.csv`` (Kendall tau, metric vs ground truth)
and ``final/selection.json``. Jobs that differ only in their seed form one *method group*;
`nasx.report_plots` draws the groups.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from nasx.errors import NasxError

#: override keys that name no method (how, not what, a job ran)
_NOT_METHOD = ("seed", "stages", "progress", "logger", "trainer", "hydra", "evaluator")


@dataclass
class Job:
    """One job of a sweep, as its files describe it.

    Attributes:
        dir: the job's directory.
        overrides: its command-line overrides (``.hydra/overrides.yaml``).
        choices: the config-group choices (``space``, ``metric``, ``search``, ...).
        seed: the run seed (``None``: unknown).
        metric: the metric's name (``None``: no search ran).
        hv_curve: ``(n_evals, hypervolume)`` after each search iteration.
        best: the search's best record (``None``: none).
        n_evals: evaluated architectures.
        archive: the last iteration's evaluated records.
        correlate: ``correlate/summary.json`` (``{}``: the stage did not run).
        scores: ``(score, ground truth row)`` per architecture of ``correlate/scores.csv``.
        n_selected: architectures in ``final/`` (``None``: no selection).
        group: the overrides other jobs do not share, the seed left out (set by `load_sweep`).
    """

    dir: Path
    overrides: list[str]
    choices: dict[str, str]
    seed: int | None
    metric: str | None = None
    hv_curve: list[tuple[int, float]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    n_evals: int = 0
    archive: list[dict[str, Any]] = field(default_factory=list)
    correlate: dict[str, Any] = field(default_factory=dict)
    scores: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    n_selected: int | None = None
    group: str = ""

    @property
    def method(self) -> str:
        """``metric/search/space`` by their config-group choices."""
        return "/".join(self.choices.get(g, "?") for g in ("metric", "search", "space"))


def sweep_jobs(sweep: Path) -> list[Path]:
    """The job directories of ``sweep`` (those with ``.hydra/overrides.yaml``), sorted."""
    return sorted(p.parent.parent for p in sweep.glob("*/.hydra/overrides.yaml"))


def check_sweep_dir(value: str | None) -> Path:
    """``report.dir`` as a resolved path; a `NasxError` unless it is a sweep with jobs."""
    if value is None or str(value) == "":
        raise NasxError(
            "stages=[report] needs the sweep to report on: pass report.dir=multirun/<date>/<time>"
        )
    path = Path(str(value)).expanduser().resolve()
    if not path.is_dir():
        raise NasxError(
            f"report.dir={value} does not exist: pass a sweep directory such as "
            "report.dir=multirun/<date>/<time>"
        )
    if not sweep_jobs(path):
        raise NasxError(
            f"report.dir={value} holds no sweep jobs (no */.hydra/overrides.yaml): pass the "
            "directory of a `python run.py -m ...` sweep, e.g. report.dir=multirun/<date>/<time>"
        )
    return path


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.exists() else None


def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def load_job(job_dir: Path) -> Job:
    """Read one job's outputs (missing stages leave their fields empty)."""
    overrides = [str(o) for o in _yaml(job_dir / ".hydra" / "overrides.yaml") or []]
    hydra_cfg = _yaml(job_dir / ".hydra" / "hydra.yaml") or {}
    choices = (hydra_cfg.get("hydra", {}).get("runtime", {}) or {}).get("choices", {}) or {}
    config = _yaml(job_dir / ".hydra" / "config.yaml") or {}
    seed = config.get("seed")
    job = Job(
        dir=job_dir,
        overrides=overrides,
        choices={str(k): str(v) for k, v in choices.items()},
        seed=int(seed) if isinstance(seed, int) else None,
    )
    sdir = job_dir / "search"
    iters = sorted(sdir.glob("iter_*.json"), key=lambda p: int(p.stem.split("_")[-1]))
    last: dict[str, Any] = {}
    for path in iters:
        last = json.loads(path.read_text())
        job.hv_curve.append((int(last["n_evals"]), float(last["hv"])))
    if last:
        job.metric = str(last["objectives"][0]).lstrip("-")
        job.archive = list(last.get("archive", []))
        job.best, job.n_evals = last.get("best"), int(last["n_evals"])
    done = _json(sdir / "done.json")
    if done:
        job.best, job.n_evals = done.get("best") or job.best, int(done["n_evals"])
    job.correlate = _json(job_dir / "correlate" / "summary.json") or {}
    job.scores = _read_scores(job_dir / "correlate" / "scores.csv")
    if job.metric is None and job.correlate:
        job.metric = str(job.correlate.get("metric"))
    selection = _json(job_dir / "final" / "selection.json")
    if selection is not None:
        job.n_selected = len(selection.get("selected", []))
    return job


def _read_scores(path: Path) -> list[tuple[float, dict[str, float]]]:
    """``(score, ground truth)`` of each scored architecture of a correlate ``scores.csv``."""
    if not path.exists():
        return []
    out = []
    for row in csv.DictReader(io.StringIO(path.read_text())):
        if row.get("failed") not in ("0", "", None) or not row.get("score"):
            continue
        truth = {
            k: float(v)
            for k, v in row.items()
            if k not in ("arch", "score", "failed", "error") and v not in ("", None)
        }
        out.append((float(row["score"]), truth))
    return out


def load_sweep(sweep: Path, exclude: Path | None = None) -> list[Job]:
    """Every job of ``sweep`` but ``exclude`` (the report's own run), with its group set."""
    skip = None if exclude is None else exclude.resolve()
    jobs = [load_job(d) for d in sweep_jobs(sweep) if d.resolve() != skip]

    def method_overrides(job: Job) -> list[str]:
        return [o for o in job.overrides if o.split("=", 1)[0].lstrip("+~") not in _NOT_METHOD]

    shared = set.intersection(*(set(method_overrides(j)) for j in jobs)) if jobs else set()
    for job in jobs:
        varying = [o for o in method_overrides(job) if o not in shared]
        job.group = ",".join(varying) or job.method
    return jobs


def truth_column(jobs: list[Job], requested: str | None) -> str | None:
    """The ground-truth column the report uses (``None``: the sweep records none).

    ``requested``, else the correlate stage's plotted column, else the first column recorded.
    """
    from nasx.correlate import PLOT_COLUMN

    columns: list[str] = []
    for job in jobs:
        for rec in job.archive[:1]:
            columns += list(rec.get("ground_truth") or {})
        for _, row in job.scores[:1]:
            columns += list(row)
    if requested is not None:
        if requested not in columns and columns:
            raise NasxError(
                f"report.truth={requested} is not a ground-truth column of this sweep: use one "
                f"of {', '.join(dict.fromkeys(columns))}"
            )
        return requested
    if PLOT_COLUMN in columns:
        return PLOT_COLUMN
    return columns[0] if columns else None


def best_found(job: Job, truth: str | None) -> float | None:
    """The ground truth of the job's best record in ``truth``, else its metric value."""
    if job.best is None:
        return None
    gt = job.best.get("ground_truth") or {}
    if truth is not None and truth in gt:
        return float(gt[truth])
    if job.metric is not None and job.metric in (job.best.get("metric") or {}):
        return float(job.best["metric"][job.metric])
    return None


def summary_row(job: Job, truth: str | None) -> dict[str, Any]:
    """One row of ``summary.csv``."""
    best = job.best or {}
    metric_value = (best.get("metric") or {}).get(job.metric or "")
    gt = best.get("ground_truth") or {}
    tau = (job.correlate.get("columns") or {}).get(truth or "", {}).get("kendall_tau")
    return {
        "job": job.dir.name,
        "group": job.group,
        "overrides": " ".join(job.overrides),
        "method": job.method,
        "space": job.choices.get("space", ""),
        "metric": job.metric or "",
        "search": job.choices.get("search", ""),
        "objective": job.choices.get("objective", ""),
        "seed": job.seed,
        "n_evals": job.n_evals,
        "best_arch": best.get("arch", ""),
        "best_metric": metric_value,
        "best_truth": gt.get(truth) if truth is not None else None,
        "truth_column": truth or "",
        "hv": job.hv_curve[-1][1] if job.hv_curve else None,
        "iterations": len(job.hv_curve),
        "kendall_tau": tau,
        "n_selected": job.n_selected,
    }


def group_stats(jobs: list[Job], truth: str | None) -> list[dict[str, Any]]:
    """Per method group: seeds, mean best-found value with its 95 % t-interval, mean final HV."""
    from scipy import stats

    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.group, []).append(job)
    rows = []
    for name, members in groups.items():
        values = [v for v in (best_found(j, truth) for j in members) if v is not None]
        hvs = [j.hv_curve[-1][1] for j in members if j.hv_curve]
        mean = sum(values) / len(values) if values else math.nan
        low = high = math.nan
        if len(values) >= 2:
            sem = stats.sem(values)
            low, high = (
                (mean, mean)
                if sem == 0
                else stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
            )
        rows.append(
            {
                "group": name,
                "n_jobs": len(members),
                "n_values": len(values),
                "best_mean": mean,
                "best_ci95_low": float(low),
                "best_ci95_high": float(high),
                "hv_mean": sum(hvs) / len(hvs) if hvs else math.nan,
            }
        )
    return rows
