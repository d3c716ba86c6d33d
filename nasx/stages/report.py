"""The ``report`` stage: aggregate a sweep into ``<report.dir>/report/`` (CSV and figures)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from nasx.io import write_csv_atomic
from nasx.report import (
    check_sweep_dir,
    group_stats,
    load_sweep,
    summary_row,
    truth_column,
)
from nasx.report_plots import plot_best_found, plot_hypervolume_curves, plot_metric_vs_truth
from nasx.stages.base import Stage, register_stage
from nasx.stages.context import RunContext

log = logging.getLogger(__name__)

#: the report's folder inside the sweep directory
REPORT_DIR = "report"


@register_stage
class ReportStage(Stage):
    """Summarise the sweep at ``report.dir`` (`nasx.report`); reads no data and no supernet.

    Writes ``<report.dir>/report/``: ``summary.csv`` (one row per job), ``methods.csv`` (per
    method group: best found with its 95 % t-interval, mean final hypervolume) and the figures
    ``metric_vs_truth.png``, ``hypervolume.png`` and ``best_found.png``. It is rebuilt on every
    run (cheap), so it reflects the sweep as it is now.
    """

    name = "report"
    order = 60

    def outputs(self, run: RunContext) -> list[Path]:
        rdir = check_sweep_dir(run.cfg.report.dir) / REPORT_DIR
        return [rdir / "summary.csv", rdir / "methods.csv"]

    def done(self, run: RunContext) -> bool:
        return False

    def run(self, run: RunContext) -> dict[str, Any]:
        sweep = check_sweep_dir(run.cfg.report.dir)
        rdir = sweep / REPORT_DIR
        jobs = load_sweep(sweep, exclude=run.run_dir)
        requested = run.cfg.report.truth
        truth = truth_column(jobs, None if requested is None else str(requested))
        rows = [summary_row(j, truth) for j in jobs]
        stats = group_stats(jobs, truth)
        write_csv_atomic(rdir / "summary.csv", rows)
        write_csv_atomic(rdir / "methods.csv", stats)
        figures = [
            plot_metric_vs_truth(jobs, truth, rdir / "metric_vs_truth.png") if truth else None,
            plot_hypervolume_curves(jobs, rdir / "hypervolume.png"),
            plot_best_found(jobs, stats, truth, rdir / "best_found.png"),
        ]
        written = [p for p in figures if p is not None]
        run.tracker.report(rows, stats, written)
        log.info("report: %d jobs of %s summarised in %s", len(jobs), sweep, rdir)
        return {
            "dir": str(rdir),
            "jobs": len(jobs),
            "groups": len(stats),
            "truth": truth,
            "figures": [str(p) for p in written],
        }
