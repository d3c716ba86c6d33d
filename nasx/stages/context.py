"""What the stages of one run share (`RunContext`), and how they load what they read.

`nasx.pipeline` builds the components (`Parts`) and one `RunContext`; stages read the config,
the run directory and the components from it, and ask it for the trained supernet and the
metric context, which are loaded on first use only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, ListConfig

from nasx.data.base import ImageData
from nasx.errors import NasxError
from nasx.metric.base import Metric, MetricContext
from nasx.objective.base import Objective
from nasx.search.base import SearchStrategy
from nasx.search_space.base import Architecture, SearchSpace
from nasx.supernet.base import Supernet
from nasx.supernet.weights import load_supernet

if TYPE_CHECKING:
    from lightning.pytorch.loggers import Logger

    from nasx.evaluator import Evaluator
    from nasx.lit.tracking import SearchTracker
    from nasx.ray_backend import RayCluster, RayEvaluator

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


@dataclass
class RunContext:
    """What stages share within one run (built by `nasx.pipeline.run`).

    The trained supernet and the metric context are loaded on first use, so a stage that
    needs neither (``profile``) reads no weights and no data.

    Attributes:
        cfg: the composed config (stages are part of the pipeline: they read ``cfg``).
        run_dir: the run directory.
        parts: the instantiated components.
        logger: the Lightning logger (``None``: none).
        tracker: sends search numbers to the logger.
        rank_zero: whether this process writes files (DDP: rank 0 only).
    """

    cfg: DictConfig
    run_dir: Path
    parts: Parts
    logger: Logger | None
    tracker: SearchTracker
    rank_zero: bool = True
    _supernet: Supernet | None = None
    _ctx: MetricContext | None = None
    _data_ready: bool = field(default=False)
    _ray: RayCluster | None = None
    _ray_evaluators: list[RayEvaluator] = field(default_factory=list)

    def setup_data(self) -> None:
        """Set the dataset up for the space's input (once)."""
        if not self._data_ready:
            shape = self.parts.space.input_shape
            self.parts.data.setup(image_size=shape[1], in_channels=shape[0])
            self._data_ready = True

    @property
    def supernet(self) -> Supernet:
        """The trained supernet (loaded once from its final checkpoint)."""
        if self._supernet is None:
            self._supernet = load_trained_supernet(self.cfg, self.parts.space, self.run_dir)
        return self._supernet

    def metric_context(self) -> MetricContext:
        """What the metric reads (built once; loads the supernet only if the metric needs it)."""
        if self._ctx is None:
            self.setup_data()
            supernet = self.supernet if self.parts.metric.needs_supernet else None
            self._ctx = metric_context(self.cfg, self.parts, supernet, self.run_dir)
        return self._ctx

    def trainer(
        self,
        checkpoint_dir: Path,
        max_epochs: int,
        grad_clip: float | None,
        grad_clip_algorithm: str,
        callbacks: list[Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A Lightning Trainer from the ``trainer=`` preset that writes ``last.ckpt`` every epoch.

        ``checkpoint_dir/last.ckpt`` is rewritten after each epoch (the resume point); the run's
        logger and progress setting, and ``callbacks`` (first), are bound here, since OmegaConf
        cannot merge runtime objects into the preset. A preset this machine cannot start is
        one `NasxError`.
        """
        from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
        from lightning.pytorch.utilities.exceptions import MisconfigurationException

        from nasx.config import build

        # with no monitor, the top-1 checkpoint is simply the newest one
        every = [
            *(callbacks or []),
            ModelCheckpoint(
                dirpath=checkpoint_dir,
                filename="last",
                save_top_k=1,
                every_n_epochs=1,
                enable_version_counter=False,
            ),
        ]
        if self.cfg.progress:
            every.append(RichProgressBar(leave=True))
        make_trainer = build("trainer", self.cfg.trainer, _partial_=True)
        try:
            return make_trainer(
                max_epochs=max_epochs,
                logger=self.logger if self.logger is not None else False,
                callbacks=every,
                gradient_clip_val=grad_clip,
                gradient_clip_algorithm=grad_clip_algorithm,
                default_root_dir=str(checkpoint_dir),
                enable_progress_bar=bool(self.cfg.progress),
                # DDP: the training sampler shards itself (EpochSeededSampler), so each rank
                # reads its share of the single-process batch; Lightning's wrapper would reshuffle
                use_distributed_sampler=False,
                **kwargs,
            )
        except MisconfigurationException as exc:
            raise NasxError(f"the trainer cannot start here ({exc}): use trainer=cpu") from exc

    def evaluator(self, with_costs: bool = True) -> Evaluator:
        """An evaluator of the run's metric (and costs) on the shared metric context."""
        from nasx.config import evaluator_settings
        from nasx.evaluator import Evaluator

        costs = self.parts.costs if with_costs else []
        space, metric, seed = self.parts.space, self.parts.metric, int(self.cfg.seed)
        backend, settings = evaluator_settings(self.cfg.evaluator)
        if backend != "ray":
            return Evaluator(space, metric, costs, self.metric_context(), seed)
        from functools import partial

        from nasx.lit.evaluation import LightningRunner
        from nasx.ray_backend import RayCluster, RayEvaluator

        if self._ray is None:
            self._ray = RayCluster(settings)
        accelerator, precision, _ = runner_args(self.cfg.trainer)
        # a worker sees only its own GPUs (Ray sets CUDA_VISIBLE_DEVICES): the first of them
        make_runner = partial(
            LightningRunner, accelerator=accelerator, precision=precision, devices=1
        )
        ray_evaluator = RayEvaluator(
            space, metric, costs, self.metric_context(), seed, self._ray, make_runner
        )
        self._ray_evaluators.append(ray_evaluator)
        return ray_evaluator

    def close(self) -> None:
        """Stop the evaluation workers and a Ray cluster this run started (not a joined one)."""
        for ev in self._ray_evaluators:
            ev.close()
        self._ray_evaluators.clear()
        if self._ray is not None:
            self._ray.shutdown()


def supernet_paths(cfg: DictConfig, run_dir: Path) -> tuple[Path, Path]:
    """``(trained, initial)`` supernet checkpoint paths.

    This run's, or ``supernet.checkpoint`` and its ``init.ckpt`` sibling
    (``supernet.init_checkpoint`` overrides the latter).
    """
    if cfg.supernet.checkpoint is None:
        return run_dir / "supernet" / "final.ckpt", run_dir / "supernet" / "init.ckpt"
    final = Path(cfg.supernet.checkpoint).expanduser().resolve()
    init = (
        Path(cfg.supernet.init_checkpoint).expanduser().resolve()
        if cfg.supernet.init_checkpoint
        else final.parent / "init.ckpt"
    )
    return final, init


def load_trained_supernet(cfg: DictConfig, space: SearchSpace, run_dir: Path) -> Supernet:
    """The trained supernet of this run (or of ``supernet.checkpoint``), in eval mode."""
    final, _ = supernet_paths(cfg, run_dir)
    if cfg.supernet.checkpoint is not None and not final.exists():
        raise NasxError(
            f"supernet.checkpoint={final} does not exist: point it at the final.ckpt of a "
            "trained supernet"
        )
    if not final.exists():
        raise NasxError(
            f"no trained supernet at {final}: add supernet to stages or pass "
            "supernet.checkpoint=<path to final.ckpt>"
        )
    return load_supernet(space, final)


def metric_context(
    cfg: DictConfig, parts: Parts, supernet: Supernet | None, run_dir: Path
) -> MetricContext:
    """What the metric reads: the supernet on the evaluation device, its initial weights."""
    from nasx.io import load_state_dict

    _, init = supernet_paths(cfg, run_dir)
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
    return MetricContext(
        space=parts.space,
        supernet=supernet.to(device) if supernet is not None else None,
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

    accelerator, precision, devices = runner_args(trainer)
    try:
        return LightningRunner(accelerator=accelerator, precision=precision, devices=devices)
    except (MisconfigurationException, ValueError) as exc:
        raise NasxError(
            f"cannot evaluate with trainer.accelerator={accelerator} "
            f"trainer.precision={precision} here ({exc}): use trainer=cpu"
        ) from exc


def runner_args(trainer: DictConfig) -> tuple[str, Any, Any]:
    """``(accelerator, precision, devices)`` of candidate evaluation from the ``trainer=`` preset.

    ``devices`` is the preset's first device (``1``: the first visible one).
    """
    accelerator = str(trainer.get("accelerator", "cpu"))
    precision = trainer.get("precision", "32-true")
    devices: Any = trainer.get("devices", 1)
    if isinstance(devices, ListConfig | list) and len(devices) > 0:
        devices = [int(devices[0])]
    elif isinstance(devices, str) and "," in devices:
        devices = [int(devices.split(",")[0])]
    else:
        devices = 1
    return accelerator, precision, devices
