"""The ``search`` stage: run (or resume) the strategy against the evaluator; writes ``search/``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from nasx.io import write_json_atomic
from nasx.plots import plot_hypervolume, plot_pareto
from nasx.search.gan import GANSearch
from nasx.search_loop import SearchLoop
from nasx.stages.base import Stage, register_stage
from nasx.stages.context import RunContext

log = logging.getLogger(__name__)


@register_stage
class SearchStage(Stage):
    """Search until the budget is spent; done when ``search/done.json`` exists.

    ``search/`` holds the journal (``evaluations.jsonl``), one ``iter_<k>.json`` per
    iteration, failures in ``failed/``; ``plots/`` the Pareto front and hypervolume curves.
    """

    name = "search"
    order = 20

    def outputs(self, run: RunContext) -> list[Path]:
        return [run.run_dir / "search" / "done.json"]

    def run(self, run: RunContext) -> dict[str, Any]:
        cfg, strategy = run.cfg, run.parts.strategy
        evaluator = run.evaluator()
        sdir = run.run_dir / "search"
        built = run.run_dir / "nas_dataset" / "nas_dataset.json"
        if isinstance(strategy, GANSearch) and strategy.dataset_path is None and built.exists():
            strategy.dataset_path = built  # stages=[nas_dataset, search]: the file just built
        strategy.setup(
            evaluator.space,
            evaluator.n_obj,
            cfg.seed,
            evaluator.n_constr,
            evaluator.cost_row,
            evaluator.measured,
            evaluator.population_costs,
        )
        history: list[tuple[int, float]] = []

        def on_iteration(summary: dict[str, Any]) -> None:
            history.append((summary["n_evals"], summary["hv"]))
            run.tracker.iteration(summary)

        records = SearchLoop(sdir, strategy, evaluator, on_iteration, progress=cfg.progress).run()
        plots = [
            plot_pareto(records, evaluator.objective_names, run.run_dir / "plots" / "pareto.png"),
            plot_hypervolume(history, run.run_dir / "plots" / "hv.png"),
        ]
        run.tracker.archive(records, plots, evaluator.objective_names)
        ok = [r for r in records if not r["failed"]]
        best = min(ok, key=lambda r: r["F"][0]) if ok else None
        result = {
            "n_evals": len(records),
            "n_failed": len(records) - len(ok),
            "iterations": len(history),
            "hv": history[-1][1] if history else 0.0,
            "best": best,
        }
        write_json_atomic(self.outputs(run)[0], result)
        if best is not None:
            log.info(
                "search: %d evaluated, best %s (%s)", len(records), best["arch"], best["metric"]
            )
        return result
