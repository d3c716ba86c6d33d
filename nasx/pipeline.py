"""The run: the configured stages (`nasx.stages`) in order, each skipped when it is done."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from nasx.config import build, check_config, fingerprint, uses_surrogate
from nasx.correlate import choose_archs
from nasx.errors import NasxError
from nasx.io import write_json_atomic
from nasx.nag.adapters import adapter_for
from nasx.objective.base import MeasuredObjective
from nasx.objective.feasibility import check_feasible
from nasx.run_lock import hold_run_dir
from nasx.search.gan import NO_DATASET as GAN_NO_DATASET
from nasx.search.gan import GANSearch
from nasx.search_space.base import Architecture
from nasx.stages.context import Parts, RunContext

log = logging.getLogger(__name__)


def build_parts(cfg: DictConfig) -> Parts:
    """Check the config and instantiate every component (cheap: no data is read)."""
    check_config(cfg)
    data = build("dataset", cfg.dataset)
    space = build("space", cfg.space, num_classes=data.num_classes)
    metric = build("metric", cfg.metric)
    costs = [build("objective", c) for c in cfg.objective.costs]
    measured = [c for c in costs if isinstance(c, MeasuredObjective)]
    for cost in measured:
        if cost.key not in metric.outputs:
            raise NasxError(
                f"objective {cost.name} is measured by the metric, but metric={metric.name} "
                f"does not measure {cost.key!r}: use an early-exit metric (metric=edanas or "
                "metric=nachos) or another objective"
            )
    surrogate = build("surrogate", cfg.surrogate, seed=cfg.seed) if uses_surrogate(cfg) else None
    if surrogate is None:
        strategy = build("search", cfg.search)
    else:
        # a runtime object is bound after instantiation: OmegaConf cannot merge it into a node
        make = build("search", cfg.search, _partial_=True)
        extra: dict[str, Any] = {}
        if measured:  # CNAS's sec_predictor: search.sec_surrogate, else the surrogate group
            node = cfg.search.get("sec_surrogate") or cfg.surrogate
            extra["sec_surrogate"] = build("surrogate", node, seed=cfg.seed)
        try:
            strategy = make(surrogate=surrogate, **extra)
        except ValueError as exc:
            raise NasxError(f"invalid search config: {exc}") from exc
    if isinstance(strategy, GANSearch) and "search" in _stages(cfg):
        if strategy.needs_dataset() and "nas_dataset" not in _stages(cfg):
            raise NasxError(GAN_NO_DATASET)
        adapter_for(space)  # a space NAG cannot grow stops the run before any work
    scoring = {"search", "correlate"} & set(_stages(cfg))
    if "nas_dataset" in _stages(cfg) and str(cfg.nas_dataset.source) == "metric":
        scoring.add("nas_dataset")
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
    check_space = getattr(metric, "check_space", None)
    if callable(check_space):
        # a column the table lacks, a space without the metric's exits: stop before any work
        check_space(space)
    archs: list[Architecture] = []
    if "correlate" in _stages(cfg):
        seed = cfg.correlate.seed if cfg.correlate.seed is not None else cfg.seed
        archs = choose_archs(str(cfg.correlate.archs), space, int(seed))
    return Parts(space, data, metric, costs, strategy, archs)


def _stages(cfg: DictConfig) -> list[str]:
    return [str(s) for s in cfg.stages]


def is_rank_zero() -> bool:
    """Whether this process is global rank zero (always, outside distributed training).

    Lightning's DDP launcher re-runs the command once per extra device with ``RANK`` /
    ``LOCAL_RANK`` set; only rank zero writes run files and runs search, select, correlate.
    """
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0) == 0


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
    """Run the configured stages in ``run_dir``; returns each stage's summary by name.

    The launching process (DDP rank zero) holds ``run_dir``'s lock (`nasx.run_lock`) for the
    whole run; a second process on the same directory stops with a `NasxError`.
    """
    run_dir = Path(run_dir).resolve()
    rank_zero = is_rank_zero()
    if not rank_zero:  # a DDP worker rank, started by the rank-zero process that holds the lock
        return _run(cfg, run_dir, rank_zero)
    with hold_run_dir(run_dir):  # one process per run directory, whichever stages run
        return _run(cfg, run_dir, rank_zero)


def _run(cfg: DictConfig, run_dir: Path, rank_zero: bool) -> dict[str, Any]:
    from nasx.lit.tracking import SearchTracker
    from nasx.stages import stages_in_order

    _quiet_lightning()
    parts = build_parts(cfg)
    if rank_zero:
        _check_run_dir(cfg, run_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    logger = _build_logger(cfg.logger, run_dir)
    tracker = SearchTracker(logger, parts.metric.name)
    run_ctx = RunContext(cfg, run_dir, parts, logger, tracker, rank_zero=rank_zero)
    summary: dict[str, Any] = {"run_dir": str(run_dir)}
    try:
        for stage in stages_in_order(_stages(cfg)):
            if stage.rank_zero_only and not rank_zero:
                continue
            if stage.done(run_ctx):
                log.info("%s: done in %s, skipping", stage.name, run_dir)
                summary[stage.name] = stage.result(run_ctx)
            else:
                summary[stage.name] = stage.run(run_ctx)
        if rank_zero:
            OmegaConf.save(cfg, run_dir / "nasx_resolved.yaml", resolve=True)
    finally:
        run_ctx.close()
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
    from lightning.pytorch.loggers import WandbLogger

    cls = get_class(node._target_)
    params = inspect.signature(cls).parameters
    runtime: dict[str, Any] = {"save_dir": str(run_dir)} if "save_dir" in params else {}
    group = sweep_group()
    if issubclass(cls, WandbLogger) and node.get("group") is None and group is not None:
        # the jobs of one sweep share a W&B group (a node key: build's first argument is "group")
        node = node.copy()
        with open_dict(node):
            node.group = group
    return build("logger", node, **runtime)


def sweep_group() -> str | None:
    """The sweep directory of a Hydra multirun job, as ``<date>/<time>`` (``None``: not one)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    return "/".join(Path(str(hc.sweep.dir)).parts[-2:])


def current_run_dir() -> Path:
    """The Hydra run directory of the running job."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


__all__ = ["Parts", "build_parts", "current_run_dir", "run"]
