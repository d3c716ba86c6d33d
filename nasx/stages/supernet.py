"""The ``supernet`` stage: train the space's supernet as the ``supernet=`` recipe says."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from nasx.config import build, recipe_node
from nasx.lit.supernet import SupernetLitModule
from nasx.stages.base import Stage, register_stage
from nasx.stages.context import RunContext
from nasx.supernet.base import build_supernet
from nasx.supernet.recipe import TrainingRecipe

log = logging.getLogger(__name__)


class _SaveInitial(Callback):
    """Saves the weights before the first step (the angle metric's W_0), once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.path.exists():
            save_checkpoint(trainer, self.path)


def save_checkpoint(trainer: L.Trainer, path: Path) -> None:
    """Lightning checkpoint of the weights only, written atomically by global rank zero.

    Every rank calls it (``save_checkpoint`` is collective); rank zero writes a temporary file
    and renames it, the others wait at a barrier, so no rank renames a file it did not write.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    trainer.save_checkpoint(tmp, weights_only=True)
    if trainer.is_global_zero:
        os.replace(tmp, path)
    trainer.strategy.barrier("nasx_save_checkpoint")


@register_stage
class SupernetStage(Stage):
    """Trains the supernet; resumes from ``supernet/last.ckpt``; done when ``final.ckpt`` exists.

    Runs on every DDP rank (the trainer's strategy shards the data). With
    ``supernet.checkpoint`` set, weights come from there and nothing is trained.
    """

    name = "supernet"
    order = 10
    rank_zero_only = False

    def outputs(self, run: RunContext) -> list[Path]:
        return [run.run_dir / "supernet" / "final.ckpt"]

    def done(self, run: RunContext) -> bool:
        return run.cfg.supernet.checkpoint is not None or super().done(run)

    def result(self, run: RunContext) -> dict[str, Any]:
        src = run.cfg.supernet.checkpoint or self.outputs(run)[0]
        return {"checkpoint": str(src)}

    def run(self, run: RunContext) -> dict[str, Any]:
        cfg, space, data = run.cfg, run.parts.space, run.parts.data
        run.setup_data()
        recipe: TrainingRecipe = build("supernet", recipe_node(cfg))
        sdir = run.run_dir / "supernet"
        final = sdir / "final.ckpt"
        labels = data.random_labels(cfg.seed) if recipe.random_labels else None
        loader = data.train_loader(seed=cfg.seed, labels=labels)
        module = SupernetLitModule(build_supernet(space), recipe, int(cfg.seed))
        trainer = run.trainer(
            sdir,
            recipe.epochs,
            recipe.grad_clip,
            recipe.grad_clip_algorithm,
            callbacks=[_SaveInitial(sdir / "init.ckpt")],
        )
        last = sdir / "last.ckpt"
        if last.exists():
            log.info("supernet: resuming from %s", last)
        trainer.fit(
            module,
            train_dataloaders=loader,
            ckpt_path=str(last) if last.exists() else None,
            weights_only=True,
        )
        save_checkpoint(trainer, final)
        log.info("supernet: trained %d epochs, weights in %s", recipe.epochs, final)
        return {"checkpoint": str(final)}
