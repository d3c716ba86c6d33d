"""Stages as a registry: run order, unknown names, a stage added in one class, DDP rank zero."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nasx import pipeline
from nasx.errors import NasxError
from nasx.io import write_json_atomic
from nasx.stages import RunContext, Stage, register_stage, stage_names, stages_in_order
from nasx.stages.supernet import save_checkpoint
from tests.conftest import run_cli


def test_registered_stages_run_in_pipeline_order() -> None:
    builtin = ["profile", "supernet", "search", "select", "correlate"]
    assert [n for n in stage_names() if n in builtin] == builtin
    names = [s.name for s in stages_in_order(["select", "search", "supernet"])]
    assert names == ["supernet", "search", "select"]
    with pytest.raises(NasxError, match="unknown stage 'serch'.*profile"):
        stages_in_order(["serch"])


@register_stage
class CountStage(Stage):
    """A user stage in a few lines: counts the search archive."""

    name = "count_archive"
    order = 35

    def outputs(self, run: RunContext) -> list[Path]:
        return [run.run_dir / "count.json"]

    def run(self, run: RunContext) -> dict[str, Any]:
        lines = (run.run_dir / "search" / "evaluations.jsonl").read_text().splitlines()
        out = {"n": len(lines)}
        write_json_atomic(self.outputs(run)[0], out)
        return out


def test_a_new_stage_is_one_class(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("experiment=smoke", "metric=params", "stages=[search,count_archive,select]")
    out = pipeline.run(cfg, tmp_path)
    assert out["count_archive"] == {"n": 8}
    assert json.loads((tmp_path / "count.json").read_text()) == {"n": 8}
    # done: the second run reads the result instead of running it
    (tmp_path / "search" / "evaluations.jsonl").write_text("")
    assert pipeline.run(cfg, tmp_path)["count_archive"] == {"n": 8}


def test_other_ranks_write_nothing_and_do_not_search(
    compose_cfg, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(pipeline, "is_rank_zero", lambda: False)
    cfg = compose_cfg("experiment=smoke", "metric=params", "stages=[search,select]")
    out = pipeline.run(cfg, tmp_path)
    assert set(out) == {"run_dir"}
    assert not any(tmp_path.iterdir())  # no config stamp, no search/, no final/


def test_two_process_ddp_trains_on_both_ranks_and_searches_once(tmp_path: Path) -> None:
    """Real DDP on two CPU processes (gloo), as ``trainer=ddp`` runs it on GPUs."""
    proc = run_cli(
        "experiment=smoke",
        "trainer.strategy=ddp_find_unused_parameters_true",
        "trainer.devices=2",
        f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "supernet" / "final.ckpt").is_file()
    assert not list((tmp_path / "supernet").glob(".*.tmp"))  # every rename found its file
    lines = (tmp_path / "search" / "evaluations.jsonl").read_text().splitlines()
    assert len(lines) == 8  # rank 1 did not search: no architecture was evaluated twice
    assert (tmp_path / "final" / "selection.json").is_file()


class _FakeStrategy:
    def __init__(self) -> None:
        self.barriers: list[str] = []

    def barrier(self, name: str) -> None:
        self.barriers.append(name)


class _FakeTrainer:
    """What `save_checkpoint` reads of a Lightning trainer on one DDP rank."""

    def __init__(self, rank_zero: bool) -> None:
        self.is_global_zero = rank_zero
        self.strategy = _FakeStrategy()

    def save_checkpoint(self, path: Path, weights_only: bool = False) -> None:
        if self.is_global_zero:  # Lightning writes on global rank zero only
            Path(path).write_text("weights")


@pytest.mark.parametrize("rank_zero", [True, False])
def test_checkpoints_are_renamed_by_the_rank_that_wrote_them(tmp_path: Path, rank_zero) -> None:
    trainer = _FakeTrainer(rank_zero)
    save_checkpoint(trainer, tmp_path / "final.ckpt")  # type: ignore[arg-type]
    assert (tmp_path / "final.ckpt").exists() == rank_zero
    assert trainer.strategy.barriers == ["nasx_save_checkpoint"]  # every rank waits
