"""The ``retrain`` stage: train each selected architecture stand-alone as ``retrain=`` says.

``final/<name>/`` of every architecture in ``final/selection.json`` (or of each ``+arch=`` /
``+archs=[...]``, written to ``final/given_<k>/``) receives:

- ``retrain/last.ckpt``: the resume point, rewritten every epoch;
- ``retrain_recipe.json``: the architecture and training recipe that checkpoint belongs to
  (another one starts afresh);
- ``retrained.pt``: the final weights (the EMA ones when enabled);
- a ``retrain`` entry in ``stats.json``: clean test top-1/top-5 in percent, params and MACs
  in millions at `SearchSpace.input_shape_of`, epochs and the recipe (and the corruption
  errors with ``retrain.corruptions``).

``final/retrain.json`` (the recipe and the architectures) marks the stage done: the same
recipe is skipped, a changed one retrains (a change of ``retrain.corruptions`` alone only
re-evaluates the retrained weights).
"""

from __future__ import annotations

import inspect
import json
import logging
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torch import nn

from nasx.config import build
from nasx.data.base import ImageData
from nasx.errors import NasxError
from nasx.io import load_state_dict, save_torch_atomic, write_json_atomic, write_text_atomic
from nasx.lit.retrain import RetrainLitModule
from nasx.objective.profile import count_macs, count_params
from nasx.retrain.recipe import RetrainRecipe, evaluate_topk, load_inherited, supports_drop_path
from nasx.search_space.base import Architecture, SearchSpace
from nasx.stages.base import Stage, register_stage
from nasx.stages.context import RunContext, evaluation_runner
from nasx.stages.profile import requested_archs

log = logging.getLogger(__name__)

#: ``retrain`` keys that change only the evaluation of the retrained weights, not the training
EVAL_ONLY_KEYS = ("corruptions", "severities")
#: beside ``retrain/``: the architecture and training recipe its checkpoint belongs to
STAMP = "retrain_recipe.json"


def recipe_settings(cfg: DictConfig) -> dict[str, Any]:
    """The resolved ``retrain`` node (what the marker and ``stats.json`` record)."""
    node = OmegaConf.to_container(cfg.retrain, resolve=True)
    assert isinstance(node, dict)
    return {str(k): v for k, v in node.items()}


def retrain_targets(run: RunContext) -> list[tuple[str, str]]:
    """``(folder name, canonical architecture)`` of every architecture to retrain."""
    space, cfg = run.parts.space, run.cfg
    if cfg.get("arch") is not None or cfg.get("archs") is not None:
        texts = requested_archs(run)
        return [(f"given_{k:02d}", space.to_str(space.parse(t))) for k, t in enumerate(texts)]
    marker = run.run_dir / "final" / "selection.json"
    if not marker.exists():
        raise NasxError(
            f"retrain: no selection in {marker.parent}: add select before it "
            "(stages=[...,select,retrain]) or name architectures with +arch=<architecture>"
        )
    selected = json.loads(marker.read_text())["selected"]
    return [(str(s["name"]), str(s["arch"])) for s in selected]


def evaluate_ood(
    net: nn.Module,
    data: ImageData,
    corruptions: list[str] | None,
    device: torch.device,
    image_size: int,
    severities: list[int] | None = None,
) -> dict[str, Any] | None:
    """Corruption (OOD) errors of ``net`` on the test split; ``None`` unless requested.

    The corruptions live in `nasx.ood` (`RetrainRecipe` refuses ``retrain.corruptions``
    when that package is absent); they come from the dataset's `corruption_source` (the
    official files under ``dataset.corruptions``, or generated and cached). They are made for
    CIFAR's 32-px images, so the test split must be prepared at 32 px
    (``retrain.data_resolution=32`` when the space's input is larger); its uint8 pixels are
    recovered by undoing the dataset's normalisation.
    """
    if corruptions is None:
        return None
    from nasx.ood import SEVERITIES, corruption_accuracy, to_pixels

    mean, std = getattr(data, "mean", None), getattr(data, "std", None)
    x, y = data.split("test")
    if mean is None or std is None or x.shape[-1] != 32 or x.shape[1] != 3:
        raise NasxError(
            f"retrain.corruptions needs 32-px RGB test images with a known normalisation, got "
            f"{tuple(x.shape[1:])} from {type(data).__name__}: set retrain.data_resolution=32 "
            "(CIFAR) or retrain.corruptions=null"
        )
    result: dict[str, Any] = corruption_accuracy(
        net,
        to_pixels(x, mean, std),
        y.numpy(),
        (tuple(mean), tuple(std)),
        image_size,
        device=device,
        corruptions=corruptions,
        severities=severities or SEVERITIES,
        source=data.corruption_source,
        indices=data.test_indices,
    )
    return result


def _arch_seed(seed: int, text: str) -> int:
    return int(np.random.SeedSequence([seed, zlib.crc32(text.encode())]).generate_state(1)[0])


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _distributed(cfg: DictConfig) -> bool:
    trainer = cfg.trainer
    devices = trainer.get("devices", 1)
    several = str(devices) not in ("1", "[0]") or int(trainer.get("num_nodes", 1) or 1) > 1
    return "ddp" in str(trainer.get("strategy", "")) and several


@register_stage
class RetrainStage(Stage):
    """Retrains the selected (or given) architectures; done when the marker matches.

    ``final/retrain.json`` must hold this recipe and these architectures. Runs on every DDP
    rank (Lightning DDP shards the data); rank zero alone writes files.
    """

    name = "retrain"
    order = 35
    rank_zero_only = False

    def outputs(self, run: RunContext) -> list[Path]:
        return [run.run_dir / "final" / "retrain.json"]

    def done(self, run: RunContext) -> bool:
        previous = _read_json(self.outputs(run)[0])
        if previous is None:
            return False
        try:
            targets = retrain_targets(run)
        except NasxError:
            return False
        archs = [{"name": n, "arch": a} for n, a in targets]
        return bool(
            previous.get("recipe") == recipe_settings(run.cfg)
            and previous.get("architectures") == archs
        )

    def run(self, run: RunContext) -> dict[str, Any]:
        cfg = run.cfg
        if _distributed(cfg) and {"search", "select"} & {str(s) for s in cfg.stages}:
            raise NasxError(
                "under DDP the other ranks do not wait for rank zero's search and select: run "
                "retrain as its own command once select has finished (stages=[retrain])"
            )
        settings = recipe_settings(cfg)
        try:
            recipe: RetrainRecipe = build("retrain", OmegaConf.create(settings))
        except NasxError as exc:
            raise NasxError(f"{exc} (fix that retrain value)") from None
        targets = retrain_targets(run)
        space = self._space(run, recipe)
        if recipe.init == "inherited":
            for name, _ in targets:
                weights = run.run_dir / "final" / name / "weights.pt"
                if not weights.exists():
                    raise NasxError(
                        f"retrain.init=inherited needs the supernet weights in {weights}, which "
                        "the select stage writes when the metric uses the supernet: add select "
                        "to the run (name architectures with select.archs=[...] rather than "
                        "+arch=), or retrain from scratch with retrain.init=scratch"
                    )
        data = self._data(run, recipe)
        results = {}
        for name, text in targets:
            results[name] = self._one(run, recipe, settings, space, data, name, text)
        summary = {
            "recipe": settings,
            "architectures": [{"name": n, "arch": a} for n, a in targets],
            "results": results,
        }
        if run.rank_zero:
            write_json_atomic(self.outputs(run)[0], summary)
            log.info("retrain: %d architectures retrained", len(targets))
        return summary

    # --- what is trained on ------------------------------------------------------------------
    @staticmethod
    def _space(run: RunContext, recipe: RetrainRecipe) -> SearchSpace:
        """The run's space, rebuilt with ``retrain.dropout`` when its constructor takes it."""
        space = run.parts.space
        if recipe.dropout is None:
            return space
        params = inspect.signature(get_class(str(run.cfg.space._target_))).parameters
        if "dropout" not in params:
            log.warning(
                "retrain.dropout=%s: %s builds no dropout layer; ignored",
                recipe.dropout,
                type(space).__name__,
            )
            return space
        classes = run.parts.data.num_classes
        rebuilt: SearchSpace = build(
            "space", run.cfg.space, num_classes=classes, dropout=recipe.dropout
        )
        return rebuilt

    @staticmethod
    def _data(run: RunContext, recipe: RetrainRecipe) -> ImageData:
        """The run's dataset, or a new one at ``data_resolution`` / ``batch_size``."""
        channels, size = run.parts.space.input_shape[0], run.parts.space.input_shape[1]
        want = recipe.data_resolution or size
        if getattr(run.parts.data, "augment", False) and recipe.augment != "none":
            log.warning(
                "retrain.augment=%s on top of dataset.augment=true crops and flips twice",
                recipe.augment,
            )
        if recipe.batch_size is None and want == size:
            run.setup_data()
            return run.parts.data
        over = {} if recipe.batch_size is None else {"batch_size": recipe.batch_size}
        data: ImageData = build("dataset", run.cfg.dataset, **over)
        data.setup(image_size=want, in_channels=channels)
        return data

    # --- one architecture --------------------------------------------------------------------
    def _one(
        self,
        run: RunContext,
        recipe: RetrainRecipe,
        settings: dict[str, Any],
        space: SearchSpace,
        data: ImageData,
        name: str,
        text: str,
    ) -> dict[str, Any]:
        """Retrain (or resume, or only re-evaluate) one architecture; its ``retrain`` entry."""
        fdir = run.run_dir / "final" / name
        arch = space.parse(text)
        stats = _read_json(fdir / "stats.json") or {}
        entry = stats.get("retrain")
        weights_out = fdir / "retrained.pt"
        if (
            weights_out.exists()
            and isinstance(entry, dict)
            and entry.get("recipe") == settings
            and entry.get("arch") == text
        ):
            log.info("retrain: %s already retrained with this recipe", name)
            return {k: v for k, v in entry.items() if k != "recipe"}
        if name.startswith("given_") and run.rank_zero:
            self._write_given(space, fdir, arch, text)
        stamp = {
            "arch": text,
            "recipe": {k: v for k, v in settings.items() if k not in EVAL_ONLY_KEYS},
        }
        trained = weights_out.exists() and _read_json(fdir / STAMP) == stamp
        module = self._module(run, recipe, space, data, arch, fdir, name, text)
        if trained:
            nn.Module.load_state_dict(module.eval_net, load_state_dict(weights_out))
            device = evaluation_runner(run.cfg.trainer).device
        else:
            device = self._fit(run, recipe, module, data, fdir, stamp)
        if not run.rank_zero:
            return {}
        final = module.eval_net.to(device)
        if not trained:
            state = {k: v.detach().cpu() for k, v in final.state_dict().items()}
            save_torch_atomic(weights_out, {"state_dict": state})
        shape = space.input_shape_of(arch)
        top1, top5 = evaluate_topk(
            final, data.eval_loader("test"), device, lambda x: module.prepare(x, train=False)
        )
        ood = evaluate_ood(final, data, recipe.corruptions, device, shape[1], recipe.severities)
        final = final.cpu()
        aux = sum(p.numel() for n, p in final.named_parameters() if "auxiliary" in n) / 1e6
        result: dict[str, Any] = {
            "arch": text,
            "test_top1": top1,
            "test_top5": top5,
            "params": count_params(final) - aux,  # GeNAS/DARTS leave the auxiliary head out
            "macs": count_macs(final, shape),
            "input_shape": list(shape),
            "epochs": recipe.epochs,
            "init": recipe.init,
            "ema": recipe.ema_decay is not None,
            "weights": weights_out.name,
        }
        if ood is not None:
            result["corruptions"] = ood
        stats = _read_json(fdir / "stats.json") or {}
        write_json_atomic(fdir / "stats.json", {**stats, "retrain": {**result, "recipe": settings}})
        if run.logger is not None:
            run.logger.log_metrics(
                {f"retrain/{name}/test_top1": top1, f"retrain/{name}/test_top5": top5}
            )
        log.info("retrain: %s: test top-1 %.2f%%, top-5 %.2f%%", name, top1, top5)
        if ood is not None:
            log.info(
                "retrain: %s: mean corruption error %.2f%% over %s (%s)",
                name,
                ood["mce"],
                ", ".join(ood["mean_errors"]),
                ", ".join(sorted(set(ood["sources"].values()))),
            )
            if run.logger is not None:
                run.logger.log_metrics({f"retrain/{name}/mce": ood["mce"]})
        return result

    @staticmethod
    def _write_given(space: SearchSpace, fdir: Path, arch: Architecture, text: str) -> None:
        """``arch.txt``, ``config.json`` and ``stats.json`` of a ``+arch=`` architecture."""
        held = fdir / "arch.txt"
        if held.exists() and held.read_text().strip() != text:
            raise NasxError(
                f"{fdir} holds another architecture ({held.read_text().strip()}): move that "
                "folder away or retrain it under its own name"
            )
        write_text_atomic(held, text + "\n")
        write_json_atomic(fdir / "config.json", {**space.describe(), "genes": list(arch.genes)})
        if not (fdir / "stats.json").exists():
            write_json_atomic(fdir / "stats.json", {"arch": text, "reasons": ["given"]})

    @staticmethod
    def _module(
        run: RunContext,
        recipe: RetrainRecipe,
        space: SearchSpace,
        data: ImageData,
        arch: Architecture,
        fdir: Path,
        name: str,
        text: str,
    ) -> RetrainLitModule:
        """The freshly initialised (or inherited) network in its Lightning shell."""
        seed = _arch_seed(int(run.cfg.seed), text)
        torch.manual_seed(seed)  # the initial weights depend on the seed and the arch only
        net = space.build_retrain_network(arch, auxiliary=recipe.aux_weight > 0)
        if recipe.init == "inherited":
            try:
                reset = load_inherited(net, load_state_dict(fdir / "weights.pt"))
            except ValueError as exc:
                raise NasxError(f"retrain: {fdir / 'weights.pt'}: {exc}") from exc
            if reset:
                log.info("retrain: %s: %s start fresh (another shape)", name, ", ".join(reset))
        if recipe.drop_path > 0 and not supports_drop_path(net):
            log.warning(
                "retrain.drop_path=%s: %s has no drop path (no drop_path_prob attribute); ignored",
                recipe.drop_path,
                type(net).__name__,
            )
        return RetrainLitModule(
            net,
            recipe,
            seed,
            name,
            recipe.batch_augment(getattr(data, "mean", None), getattr(data, "std", None)),
            space.input_shape_of(arch)[1],
            bicubic=recipe.upsample_to_resolution,
        )

    @staticmethod
    def _fit(
        run: RunContext,
        recipe: RetrainRecipe,
        module: RetrainLitModule,
        data: ImageData,
        fdir: Path,
        stamp: dict[str, Any],
    ) -> torch.device:
        """Train (resuming from ``retrain/last.ckpt`` of the same recipe); the device used."""
        cfg, rdir = run.cfg, fdir / "retrain"
        last = rdir / "last.ckpt"
        fresh = _read_json(fdir / STAMP) != stamp
        if fresh and run.rank_zero:
            # a checkpoint of another recipe or architecture must not be resumed
            last.unlink(missing_ok=True)
            (fdir / "retrained.pt").unlink(missing_ok=True)
            write_json_atomic(fdir / STAMP, stamp)
        resume = not fresh and last.exists()
        val = None
        if recipe.val_split is not None:
            val = data.eval_loader(recipe.val_split)
            if len(val) == 0 and recipe.val_split == "valid":
                log.info("retrain: the valid split is empty; validating on the test split")
                val = data.eval_loader("test")
        limits: dict[str, Any] = (
            {}
            if recipe.limit_batches is None
            else {
                "limit_train_batches": recipe.limit_batches,
                "limit_val_batches": recipe.limit_batches,
            }
        )
        trainer = run.trainer(
            rdir, recipe.epochs, recipe.grad_clip, recipe.grad_clip_algorithm, **limits
        )
        if resume:
            log.info("retrain: resuming from %s", last)
        # every step reseeds torch's generator: leave the caller's stream as it was
        with torch.random.fork_rng(devices=[]):
            trainer.fit(
                module,
                train_dataloaders=data.train_loader(seed=int(cfg.seed)),
                val_dataloaders=val,
                ckpt_path=str(last) if resume else None,
                weights_only=True,
            )
        device: torch.device = trainer.strategy.root_device
        return device
