"""The run: supernet -> search -> select -> correlate, each skipped when its output exists."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from nasx.config import build, check_config, fingerprint, uses_surrogate
from nasx.correlate import choose_archs, run_correlate
from nasx.data.base import ImageData
from nasx.errors import NasxError
from nasx.evaluator import Evaluator
from nasx.io import write_json_atomic
from nasx.metric.base import Metric, MetricContext
from nasx.metric.benchmark import BenchmarkMetric
from nasx.objective.base import Objective
from nasx.objective.feasibility import check_feasible
from nasx.search.base import SearchStrategy
from nasx.search_space.base import Architecture, SearchSpace
from nasx.stages import run_search, run_select, train_supernet
from nasx.supernet.weights import load_supernet

log = logging.getLogger(__name__)


@dataclass
class Parts:
    """The instantiated components of a run."""

    space: SearchSpace
    data: ImageData
    metric: Metric
    costs: list[Objective]
    strategy: SearchStrategy
    #: what the correlate stage scores (empty when it is not among the stages)
    correlate_archs: list[Architecture] = field(default_factory=list)


def build_parts(cfg: DictConfig) -> Parts:
    """Check the config and instantiate every component (cheap: no data is read)."""
    check_config(cfg)
    data = build("dataset", cfg.dataset)
    space = build("space", cfg.space, num_classes=data.num_classes)
    metric = build("metric", cfg.metric)
    costs = [build("objective", c) for c in cfg.objective.costs]
    surrogate = build("surrogate", cfg.surrogate, seed=cfg.seed) if uses_surrogate(cfg) else None
    if surrogate is None:
        strategy = build("search", cfg.search)
    else:
        # a runtime object is bound after instantiation: OmegaConf cannot merge it into a node
        make = build("search", cfg.search, _partial_=True)
        try:
            strategy = make(surrogate=surrogate)
        except ValueError as exc:
            raise NasxError(f"invalid search config: {exc}") from exc
    scoring = {"search", "correlate"} & set(_stages(cfg))
    if scoring and metric.needs_valid and float(cfg.dataset.get("valid_fraction", 0.5)) == 0:
        raise NasxError(
            f"metric={metric.name} scores architectures on the valid split, which "
            "dataset.valid_fraction=0 leaves empty: set dataset.valid_fraction to a share in "
            "(0, 1) such as 0.5, or use a metric that needs no valid data (angle, benchmark, "
            "a zero-cost proxy)"
        )
    for cost in costs:
        cost.check(space)  # a missing table column or LUT stops the run before any work
    if any(c.has_bound for c in costs):
        # an impossible set of bounds is reported now, not after hours of infeasible search
        share = check_feasible(space, costs, seed=int(cfg.seed))
        log.info("objective bounds: %.1f%% of the checked architectures are feasible", 100 * share)
    for text in cfg.select.archs:
        space.parse(text)  # a string that does not parse stops the run before any work
    if isinstance(metric, BenchmarkMetric):
        metric.check_space(space)  # a column the table lacks stops the run before any work
    archs: list[Architecture] = []
    if "correlate" in _stages(cfg):
        seed = cfg.correlate.seed if cfg.correlate.seed is not None else cfg.seed
        archs = choose_archs(str(cfg.correlate.archs), space, int(seed))
    return Parts(space, data, metric, costs, strategy, archs)


def _stages(cfg: DictConfig) -> list[str]:
    return [str(getattr(s, "value", s)) for s in cfg.stages]


def _check_run_dir(cfg: DictConfig, run_dir: Path) -> None:
    """Writable, and (when reused) made by the same result-affecting config."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".nasx_write_probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise NasxError(
            f"run directory {run_dir} is not writable ({exc.strerror}): choose another with "
            "hydra.run.dir=<path>"
        ) from exc
    stamp = run_dir / "nasx_config.json"
    current = fingerprint(cfg)
    if stamp.exists():
        previous = json.loads(stamp.read_text())
        if previous != current:
            changed = sorted(
                k for k in set(previous) | set(current) if previous.get(k) != current.get(k)
            )
            raise NasxError(
                f"run directory {run_dir} holds a run with a different config (differs in: "
                f"{', '.join(changed)}): pass hydra.run.dir=<new path> or delete that directory"
            )
    else:
        write_json_atomic(stamp, current)


def run(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Run the configured stages in ``run_dir``; returns a summary of what was produced."""
    run_dir = Path(run_dir).resolve()
    _quiet_lightning()
    parts = build_parts(cfg)
    _check_run_dir(cfg, run_dir)
    stages = _stages(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    space, data = parts.space, parts.data
    data.setup(image_size=space.input_shape[1], in_channels=space.input_shape[0])
    logger = _build_logger(cfg.logger, run_dir)
    from nasx.lit.tracking import SearchTracker

    tracker = SearchTracker(logger, parts.metric.name)
    summary: dict[str, Any] = {"run_dir": str(run_dir)}
    try:
        if "supernet" in stages and cfg.supernet.checkpoint is None:
            train_supernet(cfg, space, data, run_dir, logger)
        final, init = _supernet_paths(cfg, run_dir)
        supernet = None
        scoring = {"search", "correlate"} & set(stages)
        if (scoring or "select" in stages) and parts.metric.needs_supernet:
            if cfg.supernet.checkpoint is not None and not final.exists():
                raise NasxError(
                    f"supernet.checkpoint={final} does not exist: point it at the "
                    "final.ckpt of a trained supernet"
                )
            if not final.exists():
                raise NasxError(
                    f"no trained supernet at {final}: add supernet to stages or pass "
                    "supernet.checkpoint=<path to final.ckpt>"
                )
            supernet = load_supernet(space, final)
        ctx = _metric_context(cfg, parts, supernet, init) if scoring else None
        if "search" in stages:
            assert ctx is not None
            evaluator = Evaluator(space, parts.metric, parts.costs, ctx, cfg.seed)
            summary["search"] = run_search(cfg, parts.strategy, evaluator, run_dir, tracker)
        if "select" in stages:
            summary["select"] = run_select(cfg, space, supernet, run_dir)
        if "correlate" in stages:
            assert ctx is not None
            scorer = Evaluator(space, parts.metric, [], ctx, cfg.seed)
            spec = {"archs": str(cfg.correlate.archs), "seed": cfg.correlate.seed}
            summary["correlate"] = run_correlate(
                parts.correlate_archs, spec, scorer, run_dir, bool(cfg.progress), logger
            )
        OmegaConf.save(cfg, run_dir / "nasx_resolved.yaml", resolve=True)
    finally:
        tracker.finish()
    return summary


def _quiet_lightning() -> None:
    """Let Lightning's messages reach the run's log handlers once, not twice."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.propagate = True


def _build_logger(node: DictConfig, run_dir: Path) -> Any:
    """The Lightning logger, writing into the run directory when it writes files."""
    import inspect

    from hydra.utils import get_class

    params = inspect.signature(get_class(node._target_)).parameters
    runtime = {"save_dir": str(run_dir)} if "save_dir" in params else {}
    return build("logger", node, **runtime)


def _supernet_paths(cfg: DictConfig, run_dir: Path) -> tuple[Path, Path]:
    if cfg.supernet.checkpoint is None:
        return run_dir / "supernet" / "final.ckpt", run_dir / "supernet" / "init.ckpt"
    final = Path(cfg.supernet.checkpoint).expanduser().resolve()
    init = (
        Path(cfg.supernet.init_checkpoint).expanduser().resolve()
        if cfg.supernet.init_checkpoint
        else final.parent / "init.ckpt"
    )
    return final, init


def _metric_context(
    cfg: DictConfig, parts: Parts, supernet: torch.nn.Module | None, init: Path
) -> MetricContext:
    from nasx.io import load_state_dict

    runner = evaluation_runner(cfg.trainer)
    device = runner.device
    init_state = None
    if supernet is not None and init.exists():
        state = load_state_dict(init)
        init_state = {k[4:] if k.startswith("net.") else k: v for k, v in state.items()}
    elif supernet is not None and parts.metric.name.startswith("angle"):
        raise NasxError(
            f"the angle metric needs the supernet's initial weights, not found at {init}: "
            "pass supernet.init_checkpoint=<path>"
        )
    net = supernet.to(device) if supernet is not None else torch.nn.Identity()
    return MetricContext(
        space=parts.space,
        supernet=net,
        data=parts.data,
        runner=runner,
        init_state=init_state,
        device=device,
    )


def evaluation_runner(trainer: DictConfig) -> Any:
    """The `LightningRunner` of candidate evaluation, as the ``trainer=`` preset says.

    It takes the preset's accelerator, precision and (first) device.

    Evaluation scores one architecture at a time on one device; a preset with several devices
    (DDP training) evaluates on the first of them.
    """
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    from nasx.lit.evaluation import LightningRunner

    accelerator = str(trainer.get("accelerator", "cpu"))
    precision = trainer.get("precision", "32-true")
    devices: Any = trainer.get("devices", 1)
    if isinstance(devices, ListConfig | list) and len(devices) > 0:
        devices = [int(devices[0])]
    elif isinstance(devices, str) and "," in devices:
        devices = [int(devices.split(",")[0])]
    else:
        devices = 1
    try:
        return LightningRunner(accelerator=accelerator, precision=precision, devices=devices)
    except (MisconfigurationException, ValueError) as exc:
        raise NasxError(
            f"cannot evaluate with trainer.accelerator={accelerator} "
            f"trainer.precision={precision} here ({exc}): use trainer=cpu"
        ) from exc


def current_run_dir() -> Path:
    """The Hydra run directory of the running job."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


__all__ = ["build_parts", "current_run_dir", "evaluation_runner", "run"]
