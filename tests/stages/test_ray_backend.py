"""evaluator.backend=ray: same archive as the local backend, dead workers retried, bad settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from nasx import pipeline
from nasx.config import check_config
from nasx.errors import NasxError
from nasx.metric import FlatnessMetric
from nasx.metric.base import MetricContext
from nasx.search_space.base import Architecture
from tests.conftest import CONF, ROOT

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("one_thread")

SMOKE = ["experiment=smoke", "search.n_evals=10"]


class DyingFlatness(FlatnessMetric):
    """Flatness whose worker process dies once per ``*.armed`` file in ``marker_dir``."""

    def __init__(self, marker_dir: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.marker_dir = marker_dir

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        for armed in sorted(Path(self.marker_dir).glob("*.armed")):
            try:
                armed.rename(armed.with_suffix(".fired"))  # atomic: one worker fires each
            except FileNotFoundError:
                continue
            (Path(self.marker_dir) / f"{os.getpid()}.{armed.stem}.pid").touch()
            os._exit(1)
        return super()._compute(arch, ctx, generator)


def _cfg(*overrides: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return cfg


def _records(run_dir: Path) -> list[dict]:
    """The journal minus timing fields."""
    lines = (run_dir / "search" / "evaluations.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """One local 2-CPU Ray shared by the module (the backend uses an initialised Ray as is)."""
    # workers import this test module to rebuild its metric: put the repository on their path
    path = [str(ROOT), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    env = {"PYTHONPATH": os.pathsep.join(path)}
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="WARNING",
        runtime_env={"env_vars": {**env, "OMP_NUM_THREADS": "1"}},
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke search with the sequential backend (its supernet is reused below)."""
    run_dir = tmp_path_factory.mktemp("local")
    pipeline.run(_cfg(*SMOKE, "stages=[supernet,search]"), run_dir)
    return run_dir


def _ray_search(local_run: Path, run_dir: Path, *overrides: str) -> list[dict]:
    """A Ray search on ``local_run``'s supernet; its records."""
    ckpt = local_run / "supernet" / "final.ckpt"
    cfg = _cfg(
        *SMOKE,
        "stages=[search]",
        f"supernet.checkpoint={ckpt}",
        "evaluator.backend=ray",
        "evaluator.num_workers=2",
        *overrides,
    )
    pipeline.run(cfg, run_dir)
    return _records(run_dir)


def test_ray_evaluator_equals_sequential(cluster: None) -> None:
    """Unit level: the same records, in order, from 2 workers as from the sequential evaluator;
    the metric goes to the workers again only when its state changes."""
    import numpy as np

    from nasx.data import FakeData
    from nasx.evaluator import Evaluator
    from nasx.metric import TorchRunner
    from nasx.objective import FlopsObjective
    from nasx.ray_backend import RayCluster, RayEvaluator, RaySettings
    from nasx.search_space import NB201Space
    from nasx.supernet import build_supernet

    torch.manual_seed(0)
    space = NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8)
    data = FakeData(num_train=96, num_test=8, size=8, num_classes=4)
    data.setup(image_size=8, in_channels=3)
    ctx = MetricContext(space, build_supernet(space).eval(), data, TorchRunner())
    metric = FlatnessMetric(recal_images=16, val_images=32)
    rng = np.random.default_rng(0)
    archs = list({space.to_str(a): a for a in (space.sample(rng) for _ in range(7))}.values())
    costs = [FlopsObjective()]
    want = Evaluator(space, metric, costs, ctx, 3).evaluate(archs)
    cluster_ = RayCluster(RaySettings(num_workers=2))
    ev = RayEvaluator(space, metric, costs, ctx, 3, cluster_, TorchRunner)
    try:
        got = ev.evaluate(archs)
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in got] == [
            {k: v for k, v in r.items() if k != "seconds"} for r in want
        ]
        assert ev._metric_version == 0
        ev.evaluate(archs[:1])
        assert ev._metric_version == 0  # unchanged metric: not sent again
        metric.stds = [0.002, 0.004, 0.008]  # a state change (what Metric.rescore may do)
        changed = ev.evaluate(archs[:1])[0]
        assert ev._metric_version == 1
        local = Evaluator(space, metric, costs, ctx, 3)(archs[0])
        assert changed["metric"] == local["metric"] != want[0]["metric"]
    finally:
        ev.close()
        cluster_.shutdown()
    assert ray.is_initialized()  # a Ray the backend did not start is left running


def test_ray_archive_equals_local(cluster: None, local_run: Path, tmp_path: Path) -> None:
    records = _ray_search(local_run, tmp_path)
    assert records == _records(local_run)
    assert len(records) == 10 and not any(r["failed"] for r in records)
    assert ray.is_initialized(), "a Ray the run did not start is left running"


@pytest.mark.slow  # ~45 s: two worker deaths and restarts
def test_dead_worker_candidate_is_retried(cluster: None, local_run: Path, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    for k in range(2):
        (markers / f"{k}.armed").touch()
    records = _ray_search(
        local_run,
        tmp_path / "run",
        "+metric.marker_dir=" + str(markers),
        f"metric._target_={__name__}.DyingFlatness",
    )
    assert sorted(p.name for p in markers.glob("*.fired")) == ["0.fired", "1.fired"]
    pids = {int(p.name.split(".")[0]) for p in markers.glob("*.pid")}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes really died
    assert records == _records(local_run)  # complete, nothing failed, same scores
    assert not (tmp_path / "run" / "search" / "failed").exists()


@pytest.mark.slow  # ~35 s
def test_worker_dying_every_time_is_recorded_failed(
    cluster: None, local_run: Path, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    for k in range(2):
        (markers / f"{k}.armed").touch()
    records = _ray_search(
        local_run,
        tmp_path / "run",
        "+metric.marker_dir=" + str(markers),
        f"metric._target_={__name__}.DyingFlatness",
        "evaluator.num_workers=1",
        "evaluator.max_retries=1",
        "search.n_evals=2",
    )
    first = records[0]
    assert first["failed"] and "died 2 times" in first["error"], first
    assert "max_retries=1" in first["error"]
    assert (tmp_path / "run" / "search" / "failed").is_dir()
    assert not records[1]["failed"]


@pytest.mark.parametrize(
    ("overrides", "fix"),
    [
        (["evaluator.backend=dask"], "use one of local, ray"),
        (["evaluator.backend=ray", "evaluator.num_workers=0"], "at least 1 worker"),
        (["evaluator.backend=ray", "evaluator.cpus_per_worker=0"], "cpus_per_worker=0"),
        (["evaluator.backend=ray", "evaluator.max_retries=-1"], "max_retries=-1"),
        (["evaluator.backend=ray", "evaluator.gpus_per_worker=1"], "use trainer=gpu"),
        (["evaluator.backend=ray", "trainer.accelerator=gpu"], "gpus_per_worker=1"),
    ],
)
def test_bad_settings_refused(overrides: list[str], fix: str) -> None:
    with pytest.raises(NasxError, match=fix):
        check_config(_cfg(*SMOKE, *overrides))


def test_ray_not_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(NasxError, match=r"pip install nasx\[scale\]"):
        check_config(_cfg(*SMOKE, "evaluator.backend=ray"))


def test_unreachable_cluster_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Joining a cluster that is not there stops with the fix."""
    from nasx.ray_backend import RayCluster, RaySettings

    def refuse(**kwargs: object) -> None:
        raise ConnectionError(f"could not connect to {kwargs.get('address')}")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(NasxError, match=r"evaluator.address=auto .*ray start --head"):
        RayCluster(RaySettings(address="auto")).connect()


def test_backend_module_does_not_import_ray() -> None:
    code = "import nasx.ray_backend, nasx.config, nasx.stages, sys; assert 'ray' not in sys.modules"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
