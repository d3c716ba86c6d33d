"""The ``correlate`` stage: rank-correlate the metric with the space's ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nasx.correlate import choose_archs, run_correlate
from nasx.stages.base import Stage, register_stage
from nasx.stages.context import RunContext


def _spec(run: RunContext) -> dict[str, Any]:
    return {"archs": str(run.cfg.correlate.archs), "seed": run.cfg.correlate.seed}


@register_stage
class CorrelateStage(Stage):
    """Score ``correlate.archs`` and compare with the ground truth (RLNAS's Kendall tau).

    Done when ``correlate/done.json`` holds the same ``correlate`` settings; scores already in
    ``correlate/scores.jsonl`` are reused either way.
    """

    name = "correlate"
    order = 40

    def outputs(self, run: RunContext) -> list[Path]:
        cdir = run.run_dir / "correlate"
        return [cdir / "summary.json", cdir / "done.json"]

    def done(self, run: RunContext) -> bool:
        summary, done = self.outputs(run)
        return summary.exists() and done.exists() and json.loads(done.read_text()) == _spec(run)

    def run(self, run: RunContext) -> dict[str, Any]:
        cfg = run.cfg
        seed = cfg.correlate.seed if cfg.correlate.seed is not None else cfg.seed
        archs = run.parts.correlate_archs or choose_archs(
            str(cfg.correlate.archs), run.parts.space, int(seed)
        )
        return run_correlate(
            archs,
            _spec(run),
            run.evaluator(with_costs=False),
            run.run_dir,
            bool(cfg.progress),
            run.logger,
        )
