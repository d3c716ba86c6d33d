"""Config schemas (Hydra ConfigStore) and the checks that run before any work starts."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from hydra_zen import builds
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nasx.errors import NasxError
from nasx.hypervolume import ObjectiveUnits


@dataclass
class SelectConfig:
    """Post-search selection from the archive's non-dominated set (``final/``).

    ``mode``:

    - ``tradeoff``: every non-dominated architecture, the ``n_tradeoffs`` sharpest knees
      marked (NSGANetV2's trade-off mu; ``normalize=false`` measures the neighbourhood radius
      in CNAS HEAD's units, top-1 error in % and the costs, instead of on the front scaled to
      [0, 1]);
    - ``prefer``: the ``n`` points nearest the preference ``prefer``, e.g.
      ``top1#80+flops#150`` (NSGANetV2's ``--prefer``; pymoo's ASF, see `nasx.select`);
    - ``lowest``: the ``n`` points with the lowest ``objective`` (a cost name or the metric;
      default the second objective, or the best ``n`` by the metric in a single-objective
      run; CNAS's ``--prefer <objective>``).

    The most accurate point is always selected. ``n_exits`` keeps only architectures with that
    many early exits; spaces without exits record none, so a non-null value is an error there.
    ``archs`` adds architectures given by their canonical strings (exported with their
    inherited weights whether or not the search evaluated them).
    """

    mode: str = "tradeoff"
    n: int = 3
    n_tradeoffs: int = 3
    prefer: str | None = None
    objective: str | None = None
    n_exits: int | None = None
    normalize: bool = True
    archs: list[str] = field(default_factory=list)


@dataclass
class CorrelateConfig:
    """Which architectures the correlate stage scores and compares with the ground truth.

    ``archs`` is ``sample:N`` (N distinct architectures drawn uniformly), ``all`` (every
    architecture of an enumerable space) or the path of a text file with one architecture
    string per line. ``seed`` seeds the sample (``null``: the run seed).
    """

    archs: str = "sample:100"
    seed: int | None = None


@dataclass
class NASDatasetConfig:
    """Settings of the ``nas_dataset`` stage (NAG's NAS dataset, `nasx.nag.dataset`).

    ``source``: ``metric`` (``size`` distinct sampled architectures scored with the run's
    metric), ``table`` (``size`` NAS-Bench-201 rows, accuracy from ``column``), ``archive`` (an
    earlier search at ``path``) or ``scores`` (a correlate stage's scores at ``path``). ``seed``
    seeds the draw (``null``: the run seed).
    """

    source: str = "metric"
    size: int = 1000
    path: str | None = None
    seed: int | None = None
    column: str = "cifar10valid_valid_acc_12ep"


@dataclass
class ProfileConfig:
    """Settings of the ``profile`` stage.

    ``num_classes`` sizes the counted classifier (``None``: the dataset's; the papers'
    ImageNet figures use 1000).
    """

    num_classes: int | None = None


@dataclass
class EvaluatorConfig:
    """Where candidates are evaluated (`nasx.ray_backend`).

    ``backend``: ``local`` (in this process, one at a time) or ``ray`` (each batch spread over
    ``num_workers`` Ray workers holding ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs).
    ``address``: ``null`` starts a local Ray cluster for the run; ``auto`` (or ``host:port``)
    joins a running one (``ray start --head``). ``max_retries``: how often a candidate whose
    worker died is run again before it is recorded as failed.
    """

    backend: str = "local"
    address: str | None = None
    num_workers: int = 2
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    max_retries: int = 3


@dataclass
class ReportConfig:
    """Settings of the ``report`` stage (`nasx.report`).

    ``dir``: the sweep to summarise, ``multirun/<date>/<time>`` (required with
    ``stages=[report]``). ``truth``: the ground-truth column the figures and ``best_truth``
    use (``null``: the correlate stage's plotted column, else the first one recorded).
    """

    dir: str | None = None
    truth: str | None = None


@dataclass
class NasxConfig:
    """The root config; the group nodes are checked against their targets' signatures."""

    seed: int = 0
    stages: list[str] = field(default_factory=lambda: ["supernet", "search", "select"])
    progress: bool = True
    space: Any = MISSING
    dataset: Any = MISSING
    supernet: Any = MISSING
    metric: Any = MISSING
    objective: Any = MISSING
    search: Any = MISSING
    surrogate: Any = MISSING
    trainer: Any = MISSING
    logger: Any = MISSING
    retrain: Any = MISSING
    select: SelectConfig = field(default_factory=SelectConfig)
    correlate: CorrelateConfig = field(default_factory=CorrelateConfig)
    nas_dataset: NASDatasetConfig = field(default_factory=NASDatasetConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)


def run_name(override_dirname: str) -> str:
    """Run-directory name from Hydra's ``override_dirname``: stable, so a re-run resumes."""
    if not override_dirname:
        return "default"
    name = re.sub(r"[^A-Za-z0-9=,._+-]+", "_", override_dirname)
    if len(name) > 120:
        name = name[:100] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def register() -> None:
    """Register the schema and resolvers (idempotent)."""
    ConfigStore.instance().store(name="nasx_schema", node=NasxConfig)
    if not OmegaConf.has_resolver("nasx_run_name"):
        OmegaConf.register_new_resolver("nasx_run_name", run_name)


register()

#: the largest seed NumPy's legacy seeding and Lightning's ``seed_everything`` accept (2**32 - 1)
MAX_SEED = 2**32 - 1
#: groups whose node is one ``_target_`` instantiated with explicit arguments
TARGET_GROUPS = (
    "space",
    "dataset",
    "supernet",
    "metric",
    "search",
    "trainer",
    "logger",
    "retrain",
)
#: keys of the ``supernet`` node that say where weights come from, not how to train them
SUPERNET_SOURCE_KEYS = ("checkpoint", "init_checkpoint")
#: arguments supplied by the pipeline at instantiation, not by the config
RUNTIME_ARGS = {
    "space": ("num_classes",),
    "trainer": (
        "callbacks",
        "logger",
        "max_epochs",
        "gradient_clip_val",
        "gradient_clip_algorithm",
        "default_root_dir",
        "enable_progress_bar",
    ),
    "logger": ("save_dir",),
    "search": ("surrogate",),
    "surrogate": ("seed",),
}


def _target(path: str) -> Any:
    mod, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as exc:
        raise NasxError(
            f"_target_ {path!r} cannot be imported ({exc}): fix the class path"
        ) from exc


def check_node(group: str, node: DictConfig) -> None:
    """Type-check a ``_target_`` node against the target's constructor signature.

    The schema is generated from the signature (hydra-zen ``builds``), so a wrong type or an
    unknown key fails with the key's name before anything runs.
    """
    if "_target_" not in node:
        raise NasxError(f"config group {group!r} has no _target_: set {group}._target_")
    target = _target(str(node._target_))
    schema = builds(target, populate_full_signature=True, zen_exclude=RUNTIME_ARGS.get(group, ()))
    structured = OmegaConf.structured(schema)
    if any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        for p in inspect.signature(target).parameters.values()
    ):
        # the target takes **kwargs (e.g. WandbLogger -> wandb.init): check the named ones only
        node = OmegaConf.masked_copy(node, [str(k) for k in node if str(k) in structured])
    try:
        OmegaConf.merge(structured, node)
    except OmegaConfBaseException as exc:
        msg = str(exc).splitlines()[0]
        key = getattr(exc, "full_key", None) or ""
        raise NasxError(f"invalid value in {group}.{key}: {msg}") from exc


def check_config(cfg: DictConfig) -> None:
    """Every check that needs no data: types of all nodes, stage names, costs, surrogate."""
    from nasx.stages.base import stages_in_order

    stages_in_order([str(s) for s in cfg.stages])  # an unknown stage name stops here
    for group in TARGET_GROUPS:
        if group == "trainer":
            continue  # lightning.Trainer's signature holds types OmegaConf cannot express
        check_node(group, recipe_node(cfg) if group == "supernet" else cfg[group])
    if not 0 <= int(cfg.seed) <= MAX_SEED:
        raise NasxError(
            f"seed={cfg.seed} is outside NumPy's seed range: pass a seed in 0..{MAX_SEED}"
        )
    costs = cfg.objective.get("costs")
    if not isinstance(costs, ListConfig):
        raise NasxError("objective.costs must be a list of cost nodes (may be empty)")
    for i, node in enumerate(costs):
        check_node(f"objective.costs[{i}]", node)
    check_recipe(cfg)
    check_select(cfg)
    if "report" in [str(s) for s in cfg.stages]:
        from nasx.report import check_sweep_dir

        check_sweep_dir(cfg.report.dir)  # no sweep to report on: stop before any work
    check_evaluator(cfg)
    from nasx.correlate import parse_archs_spec

    parse_archs_spec(str(cfg.correlate.archs))
    from nasx.stages.nas_dataset import check_settings

    nd = cfg.nas_dataset
    check_settings(
        str(nd.source),
        int(nd.size),
        None if nd.path is None else str(nd.path),
        check_path="nas_dataset" in [str(s) for s in cfg.stages],
    )
    if uses_surrogate(cfg):
        check_node("surrogate", cfg.surrogate)
        if not str(cfg.search._target_).endswith("MSuNASSearch"):
            raise NasxError(
                "a surrogate drives the MSuNAS loop of search=msunas only: pass search=msunas, "
                "or surrogate=none with this strategy"
            )
    elif str(cfg.search._target_).endswith("MSuNASSearch"):
        raise NasxError(
            "search=msunas needs an accuracy predictor: pass surrogate=<rbf|gp|mlp|carts|as>"
        )


def evaluator_settings(node: DictConfig) -> tuple[str, Any]:
    """``(backend, RaySettings)`` of the ``evaluator`` node."""
    from nasx.ray_backend import RaySettings

    settings = RaySettings(
        address=None if node.address is None else str(node.address),
        num_workers=int(node.num_workers),
        gpus_per_worker=float(node.gpus_per_worker),
        cpus_per_worker=float(node.cpus_per_worker),
        max_retries=int(node.max_retries),
    )
    return str(node.backend), settings


def check_evaluator(cfg: DictConfig) -> None:
    """The ``evaluator`` node: backend, worker resources, Ray installed (before any work)."""
    from nasx.ray_backend import check_settings

    backend, settings = evaluator_settings(cfg.evaluator)
    check_settings(backend, settings, str(cfg.trainer.get("accelerator", "cpu")))


def recipe_node(cfg: DictConfig) -> DictConfig:
    """The ``supernet`` node without the weight-source keys: the `TrainingRecipe` arguments."""
    # resolved first: the recipe's interpolations (``${supernet.epochs}``) point at the root
    node = OmegaConf.to_container(cfg.supernet, resolve=True)
    assert isinstance(node, dict)
    return OmegaConf.create({k: v for k, v in node.items() if k not in SUPERNET_SOURCE_KEYS})


def check_recipe(cfg: DictConfig) -> None:
    """Build the training recipe and its optimiser on a dummy parameter: bad values stop here."""
    import torch

    recipe = build("supernet", recipe_node(cfg))
    try:
        opt = recipe.optimizer([torch.nn.Parameter(torch.zeros(1))])
        if recipe.scheduler is not None:
            if recipe.scheduler_interval == "step":
                recipe.scheduler(opt, steps_per_epoch=1)
            else:
                recipe.scheduler(opt)
    except (TypeError, ValueError) as exc:
        raise NasxError(
            f"invalid supernet.optimizer or supernet.scheduler: {exc} (fix that value)"
        ) from exc


def uses_surrogate(cfg: DictConfig) -> bool:
    """Whether ``surrogate=`` selects a predictor (``surrogate=none`` holds no ``_target_``)."""
    return "_target_" in cfg.surrogate


def objective_names(cfg: DictConfig) -> list[str]:
    """The ``F`` columns of this config's archive (as `nasx.evaluator.Evaluator` names them)."""
    metric = build("metric", cfg.metric)
    sign = "-" if metric.higher_is_better else ""
    return [sign + metric.name] + [build("objective", c).name for c in cfg.objective.costs]


def objective_units(cfg: DictConfig) -> ObjectiveUnits:
    """How this config's ``F`` columns map to the papers' units (`nasx.evaluator`)."""
    from nasx.evaluator import objective_units as units_of

    return units_of(build("metric", cfg.metric), len(cfg.objective.costs))


def check_select(cfg: DictConfig) -> None:
    """The ``select`` node: mode, counts, and the preference/objective against the objectives."""
    from nasx.select import MODES, objective_index, parse_preference_values

    sel = cfg.select
    if sel.mode not in MODES:
        raise NasxError(
            f"select.mode={sel.mode}: not a selection mode; use one of {', '.join(MODES)}"
        )
    if sel.n < 1:
        raise NasxError(f"select.n={sel.n}: select at least one architecture (set it >= 1)")
    if sel.n_tradeoffs < 0:
        raise NasxError(f"select.n_tradeoffs={sel.n_tradeoffs}: use a value >= 0")
    if sel.n_exits is not None and sel.n_exits < 1:
        raise NasxError(f"select.n_exits={sel.n_exits}: use a count >= 1, or null for no filter")
    if sel.mode == "prefer" and not sel.prefer:
        raise NasxError(
            "select.mode=prefer needs a preference: pass 'select.prefer=\"top1#80+flops#150\"' "
            "(key#value+key#value, one value per objective)"
        )
    if sel.prefer is not None and sel.mode != "prefer":
        raise NasxError(f"select.prefer is only read with select.mode=prefer (not {sel.mode})")
    if sel.objective is not None and sel.mode != "lowest":
        raise NasxError(f"select.objective is only read with select.mode=lowest (not {sel.mode})")
    if sel.prefer is not None or sel.objective is not None:
        names = objective_names(cfg)
        if sel.prefer is not None:
            parse_preference_values(str(sel.prefer), names)
        if sel.objective is not None:
            objective_index(str(sel.objective), names)


def build(group: str, node: Any, **runtime: Any) -> Any:
    """``instantiate`` with constructor errors turned into one-line `NasxError` messages."""
    try:
        return instantiate(node, **runtime)
    except InstantiationException as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, NasxError):
            raise cause from None
        raise NasxError(f"invalid {group} config: {cause}") from exc


def fingerprint(cfg: DictConfig) -> dict[str, Any]:
    """The parts of the config that change results (not stages, progress, logger, trainer...)."""
    keep = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    assert isinstance(keep, dict)
    # the profile stage's request and the stages' own settings change no archive
    stage_keys = ("select", "correlate", "nas_dataset", "profile", "report")
    # where candidates are evaluated changes no score (`nasx.ray_backend`)
    for key in ("stages", "progress", "logger", "trainer", "evaluator", *stage_keys):
        keep.pop(key, None)
    keep.pop("retrain", None)  # the recipe of a later stage: a search's directory stays valid
    for key in ("arch", "archs"):
        keep.pop(key, None)
    return {str(k): v for k, v in keep.items()}
