"""The pipeline's stages (part of the pipeline: these are the only other readers of ``cfg``)."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf
from torch import nn

from nasx.config import build, objective_names, objective_units
from nasx.data.base import ImageData
from nasx.errors import NasxError
from nasx.evaluator import Evaluator
from nasx.io import save_torch_atomic, write_json_atomic, write_text_atomic
from nasx.lit.supernet import SupernetLitModule
from nasx.lit.tracking import SearchTracker
from nasx.plots import plot_hypervolume, plot_pareto
from nasx.search.base import SearchStrategy
from nasx.search_loop import SearchLoop, load_records
from nasx.search_space.base import SearchSpace
from nasx.select import Selection, front_records, select_architectures
from nasx.supernet.sampler import UniformPathSampler

log = logging.getLogger(__name__)


class _SaveInitial(Callback):
    """Saves the weights before the first step (the angle metric's W_0), once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.path.exists():
            _save_checkpoint(trainer, self.path)


def _save_checkpoint(trainer: L.Trainer, path: Path) -> None:
    """Lightning checkpoint of the weights only, written atomically (temporary file, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    trainer.save_checkpoint(tmp, weights_only=True)
    os.replace(tmp, path)


def train_supernet(
    cfg: DictConfig, space: SearchSpace, data: ImageData, run_dir: Path, logger: Logger | None
) -> Path:
    """Train the supernet; resumes from ``supernet/last.ckpt``; skipped when final exists."""
    sdir = run_dir / "supernet"
    final = sdir / "final.ckpt"
    if final.exists():
        log.info("supernet: %s exists, skipping training", final)
        return final
    sc = cfg.supernet
    labels = data.random_labels(cfg.seed) if sc.random_labels else None
    loader = data.train_loader(seed=cfg.seed, labels=labels)
    module = SupernetLitModule(
        space.build_supernet(),
        UniformPathSampler(space, cfg.seed),
        lr=sc.lr,
        momentum=sc.momentum,
        weight_decay=sc.weight_decay,
        nesterov=sc.nesterov,
        epochs=sc.epochs,
        eta_min=sc.eta_min,
        lr_step_first=sc.lr_step_first,
    )
    callbacks: list[Callback] = [
        _SaveInitial(sdir / "init.ckpt"),
        # last.ckpt is rewritten after every epoch (the resume point); with no monitor, the
        # top-1 checkpoint is simply the newest one
        ModelCheckpoint(
            dirpath=sdir,
            filename="last",
            save_top_k=1,
            every_n_epochs=1,
            enable_version_counter=False,
        ),
    ]
    if cfg.progress:
        callbacks.append(RichProgressBar(leave=True))
    # runtime objects are bound after instantiation: OmegaConf cannot merge loggers/callbacks
    make_trainer = build("trainer", cfg.trainer, _partial_=True)
    try:
        trainer = make_trainer(
            max_epochs=sc.epochs,
            logger=logger if logger is not None else False,
            callbacks=callbacks,
            gradient_clip_val=sc.grad_clip,
            default_root_dir=str(sdir),
            enable_progress_bar=bool(cfg.progress),
        )
    except MisconfigurationException as exc:
        raise NasxError(f"the trainer cannot start here ({exc}): use trainer=cpu") from exc
    last = sdir / "last.ckpt"
    if last.exists():
        log.info("supernet: resuming from %s", last)
    trainer.fit(
        module,
        train_dataloaders=loader,
        ckpt_path=str(last) if last.exists() else None,
        weights_only=True,
    )
    _save_checkpoint(trainer, final)
    log.info("supernet: trained %d epochs, weights in %s", sc.epochs, final)
    return final


def run_search(
    cfg: DictConfig,
    strategy: SearchStrategy,
    evaluator: Evaluator,
    run_dir: Path,
    tracker: SearchTracker,
) -> dict[str, Any]:
    """Run (or resume) the search; writes ``search/`` and the plots."""
    sdir = run_dir / "search"
    done = sdir / "done.json"
    if done.exists():
        log.info("search: %s exists, skipping", done)
        return json.loads(done.read_text())
    strategy.setup(
        evaluator.space, evaluator.n_obj, cfg.seed, evaluator.n_constr, evaluator.cost_row
    )
    history: list[tuple[int, float]] = []

    def on_iteration(summary: dict[str, Any]) -> None:
        history.append((summary["n_evals"], summary["hv"]))
        tracker.iteration(summary)

    records = SearchLoop(sdir, strategy, evaluator, on_iteration, progress=cfg.progress).run()
    plots = [
        plot_pareto(records, evaluator.objective_names, run_dir / "plots" / "pareto.png"),
        plot_hypervolume(history, run_dir / "plots" / "hv.png"),
    ]
    tracker.archive(records, plots)
    ok = [r for r in records if not r["failed"]]
    best = min(ok, key=lambda r: r["F"][0]) if ok else None
    result = {
        "n_evals": len(records),
        "n_failed": len(records) - len(ok),
        "iterations": len(history),
        "hv": history[-1][1] if history else 0.0,
        "best": best,
    }
    write_json_atomic(done, result)
    if best is not None:
        log.info("search: %d evaluated, best %s (%s)", len(records), best["arch"], best["metric"])
    return result


def _last_hypervolume(sdir: Path) -> dict[str, Any]:
    """``hv``, ``hv_raw`` and ``hv_ref`` of the search's last iteration file (``{}``: none)."""
    iters = sorted(sdir.glob("iter_*.json"), key=lambda p: int(p.stem.split("_")[-1]))
    if not iters:
        return {}
    last = json.loads(iters[-1].read_text())
    return {k: last.get(k) for k in ("hv", "hv_raw", "hv_ref")}


def run_select(
    cfg: DictConfig, space: SearchSpace, supernet: nn.Module | None, run_dir: Path
) -> dict[str, Any]:
    """Choose architectures from the search archive (`nasx.select`) and write ``final/``.

    ``final/<name>/`` gets arch.txt, config.json, stats.json (why and by what it was chosen)
    and the inherited weights; ``final/front.csv`` lists the non-dominated records with
    ``selected`` yes/no, ``final/results.csv`` every evaluated record (CNAS's
    ``--save_stats_csv``). ``final/selection.json`` is written last: with the same ``select``
    settings the stage is then skipped; with other settings the selection is made again and
    the previous selection's folders are replaced.
    """
    fdir = run_dir / "final"
    marker = fdir / "selection.json"
    sc = cfg.select
    settings = OmegaConf.to_container(sc, resolve=True)
    previous = json.loads(marker.read_text()) if marker.exists() else None
    # a marker from before select.mode existed holds no settings: it was a tradeoff selection
    if previous is not None and (
        previous["settings"] == settings if "settings" in previous else sc.mode == "tradeoff"
    ):
        log.info("select: %s exists, skipping", marker)
        return dict(previous)
    records = load_records(run_dir / "search")
    if not records and not sc.archs:
        raise NasxError(
            f"select: no evaluated architectures in {run_dir / 'search'}: run the search stage "
            "first (stages=[search,select]) or name architectures with select.archs=[...]"
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
    if previous is not None:
        _remove_previous_selection(fdir, previous, keep={s.name for s in chosen})
    for sel in chosen:
        arch = space.parse(sel.record["arch"])
        out = fdir / sel.name
        write_text_atomic(out / "arch.txt", sel.record["arch"] + "\n")
        write_json_atomic(out / "config.json", {**space.describe(), "genes": list(arch.genes)})
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
        if supernet is not None:
            net = space.extract(supernet, arch).cpu()
            save_torch_atomic(out / "weights.pt", {"state_dict": net.state_dict()})
    by_arch = {s.record["arch"]: s for s in chosen}
    front = front_records(records, sc.n_exits)
    write_text_atomic(
        fdir / "front.csv",
        _csv_text([_record_row(r, by_arch, position=k) for k, r in enumerate(front)]),
    )
    write_text_atomic(fdir / "results.csv", _csv_text([_record_row(r, by_arch) for r in records]))
    result = {
        "settings": settings,
        "objectives": names,
        # the hypervolume of the archive the selection was made from (NSGANetV2/CNAS's fraction)
        **_last_hypervolume(run_dir / "search"),
        "selected": [
            {"name": s.name, "arch": s.record["arch"], "reasons": list(s.reasons)} for s in chosen
        ],
    }
    write_json_atomic(marker, result)
    log.info("select: %d architectures written to %s", len(chosen), fdir)
    return result


#: the files run_select writes into each ``final/<name>/`` folder
_SELECTION_FILES = {"arch.txt", "config.json", "stats.json", "weights.pt"}


def _remove_previous_selection(fdir: Path, previous: dict[str, Any], keep: set[str]) -> None:
    """Delete the folders of an earlier selection, unless they hold files nasx did not write."""
    for entry in previous.get("selected", []):
        name = str(entry.get("name", ""))
        folder = fdir / name
        if name in keep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in {".", ".."}:
            continue
        if not folder.is_dir():
            continue
        if {p.name for p in folder.iterdir()} <= _SELECTION_FILES and not any(
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


def _csv_text(rows: list[dict[str, Any]]) -> str:
    """CSV with the union of the rows' keys as header (first-seen order)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
