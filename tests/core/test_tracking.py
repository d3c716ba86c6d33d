"""The search tracker: what reaches W&B and the CSV logger, and the sweep's W&B group."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from nasx.lit.tracking import SearchTracker, archive_table, iteration_metrics


class _Run:
    """Stands in for ``wandb.Run``: records what is logged."""

    def __init__(self) -> None:
        self.logged: list[dict[str, Any]] = []

    def log(self, data: dict[str, Any], step: int | None = None) -> None:
        self.logged.append(data)


class FakeWandb(WandbLogger):
    """A W&B logger whose run is `_Run` (no wandb process, no files)."""

    def __init__(self) -> None:
        super().__init__(mode="disabled")
        self.run = _Run()

    @property
    def experiment(self) -> Any:  # type: ignore[override]
        return self.run

    def keys(self) -> dict[str, Any]:
        return {k: v for d in self.run.logged for k, v in d.items()}


def _record(arch: str, k: int, feasible: bool = True, failed: bool = False) -> dict[str, Any]:
    return {
        "arch": arch,
        "failed": failed,
        "metric": {} if failed else {"flatness": 1.0 + k},
        "objectives": {} if failed else {"flops": 10.0 * k},
        "F": [-1.0 - k, 10.0 * k],
        "feasible": feasible,
        "iteration": k // 2,
    }


SUMMARY = {
    "iteration": 2,
    "n_evals": 30,
    "n_failed": 1,
    "n_feasible": 28,
    "hv": 0.5,
    "hv_raw": 12.0,
    "surrogate": {"name": "rbf", "winner": None, "rmse": 0.1, "rho": 0.9, "tau": 0.8},
    "sec_surrogate": [{"name": "avg_macs", "winner": None, "rmse": 2.0, "rho": 0.5, "tau": 0.4}],
    "best": _record("a", 3),
}


def test_iteration_numbers_match_the_iteration_file() -> None:
    m = iteration_metrics(SUMMARY, "flatness")
    assert m["search/hv"] == 0.5 and m["search/n_feasible"] == 28
    assert (m["surrogate/rmse"], m["surrogate/rho"], m["surrogate/tau"]) == (0.1, 0.9, 0.8)
    assert m["surrogate/avg_macs/tau"] == 0.4
    assert m["search/best_flatness"] == 4.0 and m["search/best_flops"] == 30.0


def test_archive_table_has_feasibility_and_iteration() -> None:
    records = [_record("a", 0), _record("b", 1, feasible=False), _record("c", 2, failed=True)]
    columns, rows = archive_table(records)
    assert columns == ["arch", "flatness", "flops", "feasible", "iteration"]
    assert rows == [["a", 1.0, 0.0, True, 0], ["b", 2.0, 10.0, False, 0]]


def test_wandb_gets_the_archive_table_scatter_plots_and_selection(tmp_path: Path) -> None:
    import wandb

    from nasx.diagrams import draw_architecture
    from nasx.search_space import NB201Space

    space = NB201Space()
    arch = space.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|none~2|")
    png = draw_architecture(space, arch, tmp_path / "cell.png")
    plot = tmp_path / "pareto.png"
    plot.write_bytes(png.read_bytes())  # type: ignore[union-attr]
    logger = FakeWandb()
    tracker = SearchTracker(logger, "flatness")
    tracker.iteration(SUMMARY)
    tracker.archive([_record("a", 0), _record("b", 1)], [plot], ["-flatness", "flops"])
    tracker.selection(
        [
            {
                "name": "front_00",
                **_record(space.to_str(arch), 1),
                "reasons": ("knee",),
                "diagram": png,
            }
        ]
    )
    keys = logger.keys()
    assert keys["search/hv"] == 0.5 and keys["surrogate/tau"] == 0.8
    table = keys["search/archive"]
    assert isinstance(table, wandb.Table)
    assert table.columns == ["arch", "flatness", "flops", "feasible", "iteration"]
    assert "search/pareto_scatter" in keys and "plots/pareto" in keys
    selected = keys["final/selected"]
    assert isinstance(selected, wandb.Table) and selected.columns[-1] == "diagram"
    assert isinstance(selected.data[0][-1], wandb.Image)
    assert isinstance(keys["final/front_00"][0], wandb.Image)


def test_csv_logger_gets_scalars_only(tmp_path: Path) -> None:
    logger = CSVLogger(str(tmp_path), name="csv")
    tracker = SearchTracker(logger, "flatness")
    tracker.iteration(SUMMARY)
    tracker.archive([_record("a", 0)], [], ["-flatness", "flops"])  # no table, no error
    tracker.selection([{"name": "x", "arch": "a", "diagram": None}])
    text = next(tmp_path.rglob("metrics.csv")).read_text()
    assert "search/hv" in text and "surrogate/avg_macs/rmse" in text


def test_multirun_jobs_share_the_sweep_as_wandb_group(compose_cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from nasx.pipeline import _build_logger, sweep_group

    cfg = compose_cfg("hydra.sweep.dir=multirun/2026-01-02/03-04-05", "logger=wandb", hydra=True)
    single = copy.deepcopy(cfg)
    single.hydra.mode = RunMode.RUN
    cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    try:
        assert sweep_group() == "2026-01-02/03-04-05"
        logger = _build_logger(cfg.logger, Path("."))
        assert logger._wandb_init["group"] == "2026-01-02/03-04-05"
        HydraConfig.instance().set_config(single)  # a single run has no group
        assert sweep_group() is None
    finally:
        HydraConfig.instance().cfg = None  # type: ignore[assignment]


@pytest.mark.timeout(180)
def test_offline_wandb_run_holds_the_table_and_image_keys(tmp_path: Path) -> None:
    """A real offline W&B run (own process): its run file names the logged keys."""
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from lightning.pytorch.loggers import WandbLogger
        from nasx.diagrams import draw_architecture
        from nasx.lit.tracking import SearchTracker
        from nasx.search_space import NB201Space
        import numpy as np

        space = NB201Space()
        arch = space.sample(np.random.default_rng(0))
        png = draw_architecture(space, arch, Path({str(tmp_path)!r}) / "cell.png")
        t = SearchTracker(WandbLogger(project="nasx", save_dir={str(tmp_path)!r}), "flatness")
        rec = {{"arch": space.to_str(arch), "failed": False, "metric": {{"flatness": 1.0}},
               "objectives": {{"flops": 2.0}}, "feasible": True, "iteration": 0}}
        t.archive([rec], [], ["-flatness", "flops"])
        t.selection([{{**rec, "name": "front_00", "reasons": ["knee"], "diagram": png}}])
        t.finish()
        """
    )
    env = dict(os.environ, WANDB_MODE="offline", WANDB_DIR=str(tmp_path), WANDB_SILENT="true")
    res = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=170
    )
    assert res.returncode == 0, res.stderr[-2000:]
    (run_file,) = tmp_path.rglob("offline-run-*/*.wandb")
    data = run_file.read_bytes()
    for key in (b"search/archive", b"search/pareto_scatter", b"final/selected", b"final/front_00"):
        assert key in data, key
    assert list(run_file.parent.rglob("*.png")), "the cell diagram is stored with the run"
