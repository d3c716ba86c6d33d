"""The ask/evaluate/tell loop with a durable archive: resumable and replayable."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nasx.evaluator import Evaluator, JournaledEvaluation
from nasx.evaluator import safe_name as safe_name
from nasx.hypervolume import HypervolumeBox
from nasx.io import Journal, write_json_atomic
from nasx.search.base import SearchStrategy

log = logging.getLogger(__name__)

#: iterations in a row without a new architecture before the loop gives up
MAX_STALLED_ITERATIONS = 50


def load_records(out_dir: Path) -> list[dict[str, Any]]:
    """Every evaluated record of a ``search/`` directory, in evaluation order, failures included.

    Values are those of the last finished iteration file (an archive-dependent metric such as
    ``top1_robust`` rescored them there); the journal supplies failures and anything newer.
    """
    out_dir = Path(out_dir)
    journal = Journal(out_dir / "evaluations.jsonl").read()
    iters = sorted(out_dir.glob("iter_*.json"), key=lambda p: int(p.stem.split("_")[-1]))
    if not iters:
        return journal
    latest = {r["arch"]: r for r in json.loads(iters[-1].read_text())["archive"]}
    return [latest.get(r["arch"], r) for r in journal]


class SearchLoop:
    """Runs a strategy against an evaluator and writes ``search/``.

    Every evaluation is appended to ``evaluations.jsonl`` (fsync'ed) before it counts, and
    ``iter_<k>.json`` is written atomically after every iteration. On a re-run the strategy
    is replayed from its seed: architectures found in the journal are answered from it, so a
    killed search continues from the last finished evaluation and ends with the same archive as
    an uninterrupted one.

    Args:
        out_dir: the ``search/`` directory.
        strategy: a set-up search strategy.
        evaluator: scores architectures.
        on_iteration: called with the iteration summary (logging to W&B etc.).
        progress: show a progress bar.
    """

    def __init__(
        self,
        out_dir: Path,
        strategy: SearchStrategy,
        evaluator: Evaluator,
        on_iteration: Callable[[dict[str, Any]], None] | None = None,
        progress: bool = True,
    ) -> None:
        self.out_dir, self.strategy, self.evaluator = Path(out_dir), strategy, evaluator
        self.on_iteration, self.progress = on_iteration, progress
        self.journal = Journal(self.out_dir / "evaluations.jsonl")

    def run(self) -> list[dict[str, Any]]:
        """Search until the budget is spent or the strategy stops; return the records."""
        journaled = JournaledEvaluation(self.evaluator, self.journal, self.out_dir / "failed")
        if journaled.cached:
            log.info(
                "resuming search: %d evaluations found in %s",
                len(journaled.cached),
                self.journal.path,
            )
        records: dict[str, dict[str, Any]] = {}
        budget = self.strategy.n_evals
        box: HypervolumeBox | None = None
        stalled = 0
        bar = Progress(
            TextColumn("[bold]search"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            disable=not self.progress,
        )
        with bar, contextlib.closing(self.journal):
            task = bar.add_task("search", total=budget, info="")
            iteration = 0
            while len(records) < budget:
                state = self._rescore(records)
                archs = self.strategy.ask()
                if not archs:
                    break
                keys = [self.evaluator.space.to_str(a) for a in archs]
                new = [k for k in dict.fromkeys(keys) if k not in records]
                room = budget - len(records)
                by_key = dict(zip(keys, archs, strict=True))
                start = len(records)

                def annotate(
                    rec: dict[str, Any], i: int, it: int = iteration, start: int = start
                ) -> dict[str, Any]:
                    return dict(rec, iteration=it, order=start + i)

                def show(i: int, rec: dict[str, Any]) -> None:
                    records[rec["arch"]] = rec
                    bar.update(task, completed=len(records), info=self._best_info(records))

                journaled([by_key[k] for k in new[:room]], annotate, show)
                stalled = 0 if new else stalled + 1
                complete = len(new) <= room
                if complete:
                    F = np.array([records[k]["F"] for k in keys])
                    G = np.array([records[k].get("G", []) for k in keys], dtype=float)
                    self.strategy.tell(archs, F, G.reshape(len(keys), -1))
                if box is None:
                    box = self._box(records)
                summary = self._write_iteration(iteration, records, new[:room], box, state)
                if self.on_iteration is not None:
                    self.on_iteration(summary)
                iteration += 1
                if not complete or stalled >= MAX_STALLED_ITERATIONS:
                    break
        return list(records.values())

    def _rescore(self, records: dict[str, dict[str, Any]]) -> dict[str, float] | None:
        """Let an archive-dependent metric rescore every record; the strategy is told."""
        ok = [r for r in records.values() if not r["failed"]]
        metric = self.evaluator.metric
        state = metric.rescore([r["metric"] for r in ok])
        if state is None:
            return None
        sign = -1.0 if metric.higher_is_better else 1.0
        for r in ok:
            r["F"] = [sign * r["metric"][metric.name], *r["F"][1:]]
        self.strategy.rescore({tuple(r["genes"]): np.asarray(r["F"], dtype=float) for r in ok})
        return state

    def _box(self, records: dict[str, dict[str, Any]]) -> HypervolumeBox | None:
        """MSuNAS's box: reference 1.01 x the worst of the first iteration (the DOE)."""
        F = np.array(
            [r["F"] for r in records.values() if not r["failed"] and r.get("feasible", True)]
        )
        return HypervolumeBox.from_doe(F, self.evaluator.units) if len(F) else None

    def _best_info(self, records: dict[str, dict[str, Any]]) -> str:
        ok = [r for r in records.values() if not r["failed"]]
        if not ok:
            return ""
        best = min(ok, key=lambda r: r["F"][0])
        name = self.evaluator.metric.name
        return f"best {name}={best['metric'][name]:.4g}"

    def _write_iteration(
        self,
        iteration: int,
        records: dict[str, dict[str, Any]],
        candidates: list[str],
        box: HypervolumeBox | None,
        state: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        ok = [r for r in records.values() if not r["failed"]]
        feasible = [r for r in ok if r.get("feasible", True)]
        F = np.array([r["F"] for r in feasible]).reshape(len(feasible), self.evaluator.n_obj)
        best = min(feasible, key=lambda r: r["F"][0]) if feasible else None
        summary = {
            "iteration": iteration,
            "n_evals": len(records),
            "n_failed": len(records) - len(ok),
            "n_feasible": len(feasible),
            "objectives": self.evaluator.objective_names,
            # NSGANetV2/CNAS's HV: the dominated fraction of the box [ideal, ref] in paper
            # units (top-1 error in %, costs); hv_raw is the volume in F's own units
            "hv": box.fraction(F) if box is not None else 0.0,
            "hv_raw": box.raw(F) if box is not None else 0.0,
            "hv_ref": None if box is None else box.ref.tolist(),
            "hv_ideal": None if box is None else box.ideal.tolist(),
            "best": best,
            "candidates": candidates,
            "surrogate": None,
            **self.strategy.info(),
            **(state or {}),
        }
        write_json_atomic(
            self.out_dir / f"iter_{iteration}.json",
            {
                **summary,
                "archive": ok,
                "failed": [r["arch"] for r in records.values() if r["failed"]],
            },
        )
        return summary
