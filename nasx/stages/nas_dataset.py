"""The ``nas_dataset`` stage: build NAG's NAS dataset for the run's space (`nasx.nag.dataset`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from nasx.errors import NasxError
from nasx.io import write_json_atomic
from nasx.nag import dataset as nas
from nasx.stages.base import Stage, register_stage
from nasx.stages.context import RunContext, supernet_paths

log = logging.getLogger(__name__)

#: values of ``nas_dataset.source``
SOURCES = ("metric", "table", "archive", "scores")
_PATH_HINT = {
    "archive": "the run directory of an earlier search (or its search/evaluations.jsonl)",
    "scores": "the run directory of a correlate stage (or its correlate/scores.jsonl)",
}


def check_settings(source: str, size: int, path: str | None, check_path: bool = True) -> None:
    """Raise `NasxError` naming the fix for bad ``nas_dataset`` settings (before any work).

    ``check_path`` also resolves ``path`` for the archive and scores sources.
    """
    if source not in SOURCES:
        raise NasxError(
            f"nas_dataset.source={source}: not a source; use one of {', '.join(SOURCES)}"
        )
    if size < 1:
        raise NasxError(f"nas_dataset.size={size}: a NAS dataset needs at least 1 architecture")
    if source in _PATH_HINT:
        if path is None or not str(path).strip():
            raise NasxError(
                f"nas_dataset.source={source} reads nas_dataset.path: pass "
                f"nas_dataset.path=<{_PATH_HINT[source]}>"
            )
        if check_path:
            try:
                (nas.archive_dir if source == "archive" else nas.scores_file)(path)
            except NasxError as exc:
                raise NasxError(f"nas_dataset.path={path}: {exc}") from None


def _settings(run: RunContext) -> dict[str, Any]:
    """The settings that decide the dataset (stored in the summary: others rebuild it)."""
    node = run.cfg.nas_dataset
    source = str(node.source)
    if source in _PATH_HINT:
        return {"source": source, "path": str(node.path)}
    seed = int(node.seed) if node.seed is not None else int(run.cfg.seed)
    out: dict[str, Any] = {"source": source, "size": int(node.size), "seed": seed}
    if source == "table":
        out["column"] = str(node.column)
    return out


@register_stage
class NASDatasetStage(Stage):
    """Build the NAS dataset NAG's generator learns from; writes ``nas_dataset/``.

    ``nas_dataset.source``: ``metric`` scores ``size`` distinct sampled architectures with the
    run's metric (with a trained supernet when the metric reads one: NAG's one-shot dataset),
    journalled in ``nas_dataset/scores.jsonl`` so a killed stage resumes without re-scoring;
    ``table`` draws ``size`` NAS-Bench-201 rows (``column``); ``archive`` and ``scores`` read an
    earlier search or correlate run at ``path``. Done when ``nas_dataset/nas_dataset.json``
    exists and ``nas_dataset/summary.json`` holds the same settings.
    """

    name = "nas_dataset"
    order = 15

    def outputs(self, run: RunContext) -> list[Path]:
        out = run.run_dir / "nas_dataset"
        return [out / "summary.json", out / "nas_dataset.json"]

    def done(self, run: RunContext) -> bool:
        summary, data = self.outputs(run)
        if not (summary.exists() and data.exists()):
            return False
        return bool(json.loads(summary.read_text()).get("settings") == _settings(run))

    def run(self, run: RunContext) -> dict[str, Any]:
        settings = _settings(run)  # checked before any work (nasx.config.check_config)
        summary_path, data_path = self.outputs(run)
        summary_path.unlink(missing_ok=True)
        space, source = run.parts.space, settings["source"]
        if source == "table":
            ds = nas.from_table(space, settings["size"], settings["seed"], settings["column"])
        elif source == "archive":
            ds = nas.from_archive(space, settings["path"])
        elif source == "scores":
            ds = nas.from_scores(space, settings["path"])
        else:
            ds = self._from_metric(run, settings["size"], settings["seed"])
        ds.save(data_path, space)
        summary = {**ds.describe(), "path": str(data_path), "settings": settings}
        write_json_atomic(summary_path, summary)
        acc = summary["accuracy"]
        log.info(
            "nas_dataset: %d architectures from %s, %s in [%.4g, %.4g], written to %s",
            len(ds),
            source,
            ds.score_name,
            acc["min"],
            acc["max"],
            data_path,
        )
        return summary

    def _from_metric(self, run: RunContext, size: int, seed: int) -> nas.NASDataset:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        space = run.parts.space
        archs = nas.sample_archs(space, size, seed)
        evaluator = run.evaluator(with_costs=False)
        needs = evaluator.metric.needs_supernet
        source = {
            "kind": "metric",
            "seed": seed,
            "n": size,
            "supernet": str(supernet_paths(run.cfg, run.run_dir)[0]) if needs else None,
        }
        bar = Progress(
            TextColumn("[bold]nas_dataset"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not run.cfg.progress,
        )
        with bar:
            task = bar.add_task("nas_dataset", total=len(archs))
            return nas.from_metric(
                evaluator,
                archs,
                run.run_dir / "nas_dataset" / "scores.jsonl",
                source,
                on_record=lambda _i, _r: bar.advance(task),
            )
