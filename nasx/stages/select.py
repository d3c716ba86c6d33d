"""The ``select`` stage: choose architectures from the search archive and write ``final/``."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from nasx.config import objective_names, objective_units
from nasx.diagrams import draw_architecture
from nasx.errors import NasxError
from nasx.evaluator import arch_generator
from nasx.io import save_torch_atomic, write_csv_atomic, write_json_atomic, write_text_atomic
from nasx.metric.base import Metric
from nasx.metric.early_exit import EENN_FILE
from nasx.search_loop import load_records
from nasx.select import Selection, front_records, select_architectures
from nasx.stages.base import Stage, register_stage
from nasx.stages.context import RunContext

log = logging.getLogger(__name__)


@register_stage
class SelectStage(Stage):
    """Choose architectures from the search archive (`nasx.select`) and write ``final/``.

    ``final/<name>/`` gets arch.txt, config.json, stats.json (why and by what it was chosen),
    cell.png (the architecture's diagram, `nasx.diagrams`) and the inherited weights when the
    metric uses a supernet; ``final/front.csv`` lists the non-dominated records with
    ``selected`` yes/no, ``final/results.csv`` every evaluated record (CNAS's
    ``--save_stats_csv``). ``final/selection.json`` is written last: with the same ``select``
    settings the stage is then done; with other settings the selection is made again and the
    previous selection's folders are replaced.
    """

    name = "select"
    order = 30

    def outputs(self, run: RunContext) -> list[Path]:
        return [run.run_dir / "final" / "selection.json"]

    def done(self, run: RunContext) -> bool:
        marker = self.outputs(run)[0]
        if not marker.exists():
            return False
        previous = json.loads(marker.read_text())
        settings = OmegaConf.to_container(run.cfg.select, resolve=True)
        # a marker from before select.mode existed holds no settings: a tradeoff selection
        if "settings" in previous:
            return bool(previous["settings"] == settings)
        return bool(run.cfg.select.mode == "tradeoff")

    def run(self, run: RunContext) -> dict[str, Any]:
        cfg, space = run.cfg, run.parts.space
        fdir = run.run_dir / "final"
        marker = fdir / "selection.json"
        sc = cfg.select
        settings = OmegaConf.to_container(sc, resolve=True)
        previous = json.loads(marker.read_text()) if marker.exists() else None
        records = load_records(run.run_dir / "search")
        if not records and not sc.archs:
            raise NasxError(
                f"select: no evaluated architectures in {run.run_dir / 'search'}: run the search "
                "stage first (stages=[search,select]) or name architectures with select.archs=[...]"
            )
        names = objective_names(cfg)
        feasible = [r for r in records if r.get("feasible", True)]
        if len(feasible) < len(records) and not any(not r.get("failed") for r in feasible):
            log.warning(
                "select: no evaluated architecture meets the objective bounds; choosing among all"
            )
            feasible = records
        chosen = select_architectures(
            feasible,
            sc.n_tradeoffs,
            mode=sc.mode,
            n=sc.n,
            prefer=sc.prefer,
            objective=sc.objective,
            objective_names=names,
            normalize=sc.normalize,
            n_exits=sc.n_exits,
            units=objective_units(cfg),
        )
        known = {r["arch"]: r for r in records if not r.get("failed")}
        for k, text in enumerate(sc.archs):
            key = space.to_str(space.parse(text))
            chosen.append(Selection(f"given_{k:02d}", known.get(key, {"arch": key}), ("given",)))
        # each selection's seed-format files (NSGANetV2's net.subnet, net.config), built once
        refs = {sel.name: space.reference_files(space.parse(sel.record["arch"])) for sel in chosen}
        if previous is not None:
            ref_names = {n for files in refs.values() for n in files}
            ours = _SELECTION_FILES | set(space.weights_files) | ref_names
            _remove_previous_selection(fdir, previous, {s.name for s in chosen}, ours)
        logged: list[dict[str, Any]] = []
        for sel in chosen:
            arch = space.parse(sel.record["arch"])
            out = fdir / sel.name
            write_text_atomic(out / "arch.txt", sel.record["arch"] + "\n")
            diagram = draw_architecture(space, arch, out / DIAGRAM_FILE)
            write_json_atomic(out / "config.json", {**space.describe(), "genes": list(arch.genes)})
            for name, content in refs[sel.name].items():
                write_json_atomic(out / name, content)
            stats = {
                k: sel.record.get(k) for k in ("arch", "metric", "objectives", "F", "ground_truth")
            }
            why = {
                "reasons": list(sel.reasons),
                "mode": "given" if "given" in sel.reasons else sc.mode,
                "rank": sel.rank,
                "chosen_by": dict(sel.info),
            }
            write_json_atomic(out / "stats.json", {**stats, "objective_names": names, **why})
            logged.append({"name": sel.name, **stats, "reasons": sel.reasons, "diagram": diagram})
            if run.parts.metric.needs_supernet:
                net = run.supernet.extract(arch).cpu()
                for name in space.weights_files:
                    save_torch_atomic(out / name, {"state_dict": net.state_dict()})
            metric = run.parts.metric
            if type(metric).artifacts is not Metric.artifacts:  # e.g. a trained EENN
                gen = arch_generator(int(cfg.seed), arch)
                for name, obj in metric.artifacts(arch, run.metric_context(), gen).items():
                    save_torch_atomic(out / name, obj)
        by_arch = {s.record["arch"]: s for s in chosen}
        front = front_records(records, sc.n_exits)
        write_csv_atomic(
            fdir / "front.csv", [_record_row(r, by_arch, position=k) for k, r in enumerate(front)]
        )
        write_csv_atomic(fdir / "results.csv", [_record_row(r, by_arch) for r in records])
        result = {
            "settings": settings,
            "objectives": names,
            # the hypervolume of the archive the selection was made from (NSGANetV2/CNAS's fraction)
            **_last_hypervolume(run.run_dir / "search"),
            "selected": [
                {"name": s.name, "arch": s.record["arch"], "reasons": list(s.reasons)}
                for s in chosen
            ],
        }
        write_json_atomic(marker, result)
        run.tracker.selection(logged)
        log.info("select: %d architectures written to %s", len(chosen), fdir)
        return result


def _last_hypervolume(sdir: Path) -> dict[str, Any]:
    """``hv``, ``hv_raw`` and ``hv_ref`` of the search's last iteration file (``{}``: none)."""
    iters = sorted(sdir.glob("iter_*.json"), key=lambda p: int(p.stem.split("_")[-1]))
    if not iters:
        return {}
    last = json.loads(iters[-1].read_text())
    return {k: last.get(k) for k in ("hv", "hv_raw", "hv_ref")}


#: the diagram of a selected architecture, in its ``final/<name>/`` folder
DIAGRAM_FILE = "cell.png"
#: the files run_select writes into each ``final/<name>/`` folder
_SELECTION_FILES = {"arch.txt", "config.json", "stats.json", "weights.pt", DIAGRAM_FILE, EENN_FILE}


def _remove_previous_selection(
    fdir: Path, previous: dict[str, Any], keep: set[str], ours: set[str]
) -> None:
    """Delete the folders of an earlier selection, unless they hold files nasx did not write.

    ``ours`` names the files a selection folder may hold (the rest is the user's).
    """
    for entry in previous.get("selected", []):
        name = str(entry.get("name", ""))
        folder = fdir / name
        if name in keep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in {".", ".."}:
            continue
        if not folder.is_dir():
            continue
        if {p.name for p in folder.iterdir()} <= ours and not any(
            p.is_dir() for p in folder.iterdir()
        ):
            shutil.rmtree(folder)
        else:
            log.warning("select: %s holds other files; left in place", folder)


def _record_row(
    rec: dict[str, Any], chosen: dict[str, Selection], position: int | None = None
) -> dict[str, Any]:
    """One CSV row: the record's arch, metric values, costs and ground truth, and its folder."""
    sel = chosen.get(rec["arch"])
    row: dict[str, Any] = {} if position is None else {"position": position}
    row.update(arch=rec["arch"], failed="yes" if rec.get("failed") else "no")
    row.update(rec.get("metric") or {})
    row.update(rec.get("objectives") or {})
    row.update({f"gt_{k}": v for k, v in (rec.get("ground_truth") or {}).items()})
    row.update(
        selected="yes" if sel is not None else "no",
        name=sel.name if sel is not None else "",
        reasons="+".join(sel.reasons) if sel is not None else "",
    )
    return row
