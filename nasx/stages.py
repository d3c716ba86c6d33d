"""The pipeline's stages (part of the pipeline: these are the only other readers of ``cfg``)."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig
from torch import nn

from nasx.config import build
from nasx.data.base import ImageData
from nasx.errors import NasxError
from nasx.evaluator import Evaluator
from nasx.io import Journal, save_torch_atomic, write_json_atomic, write_text_atomic
from nasx.lit.supernet import SupernetLitModule
from nasx.lit.tracking import SearchTracker
from nasx.plots import plot_hypervolume, plot_pareto
from nasx.search.base import SearchStrategy
from nasx.search_loop import SearchLoop
from nasx.search_space.base import SearchSpace
from nasx.select import Selection, select_architectures
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
    strategy.setup(evaluator.space, evaluator.n_obj, cfg.seed)
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


def run_select(
    cfg: DictConfig, space: SearchSpace, supernet: nn.Module | None, run_dir: Path
) -> dict[str, Any]:
    """Write the non-dominated architectures and the best trade-offs to ``final/``."""
    fdir = run_dir / "final"
    marker = fdir / "selection.json"
    if marker.exists():
        log.info("select: %s exists, skipping", marker)
        return json.loads(marker.read_text())
    records = Journal(run_dir / "search" / "evaluations.jsonl").read()
    if not records and not cfg.select.archs:
        raise NasxError(
            f"select: no evaluated architectures in {run_dir / 'search'}: run the search stage "
            "first (stages=[search,select]) or name architectures with select.archs=[...]"
        )
    chosen = select_architectures(records, cfg.select.n_tradeoffs)
    known = {r["arch"]: r for r in records if not r.get("failed")}
    for k, text in enumerate(cfg.select.archs):
        key = space.to_str(space.parse(text))
        chosen.append(Selection(f"given_{k:02d}", known.get(key, {"arch": key}), ("given",)))
    rows = []
    for sel in chosen:
        arch = space.parse(sel.record["arch"])
        out = fdir / sel.name
        write_text_atomic(out / "arch.txt", sel.record["arch"] + "\n")
        write_json_atomic(out / "config.json", {**space.describe(), "genes": list(arch.genes)})
        stats = {
            k: sel.record.get(k) for k in ("arch", "metric", "objectives", "F", "ground_truth")
        }
        write_json_atomic(out / "stats.json", {**stats, "reasons": list(sel.reasons)})
        if supernet is not None:
            net = space.extract(supernet, arch).cpu()
            save_torch_atomic(out / "weights.pt", {"state_dict": net.state_dict()})
        rows.append(
            {
                "name": sel.name,
                "arch": sel.record["arch"],
                "reasons": "+".join(sel.reasons),
                **sel.record.get("metric", {}),
                **sel.record.get("objectives", {}),
            }
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(fdir / "front.csv", buf.getvalue())
    result = {
        "selected": [
            {"name": s.name, "arch": s.record["arch"], "reasons": list(s.reasons)} for s in chosen
        ]
    }
    write_json_atomic(marker, result)
    log.info("select: %d architectures written to %s", len(chosen), fdir)
    return result
