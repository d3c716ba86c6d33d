"""RLNAS's MobileNet space through the whole pipeline: every strategy, angle and accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasx import pipeline
from nasx.search_space import MobileNetSpace


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """``experiment=rlnas_mobilenet_smoke``: every stage, once for the module."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tests.conftest import CONF

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=rlnas_mobilenet_smoke"])
    GlobalHydra.instance().clear()
    out = tmp_path_factory.mktemp("mobilenet")
    pipeline.run(cfg, out)
    return out


def _records(run: Path) -> list[dict]:
    lines = (run / "search" / "evaluations.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_smoke_experiment_runs_every_stage(smoke_run: Path) -> None:
    recs = _records(smoke_run)
    assert len(recs) == 12 and not any(r["failed"] for r in recs)
    assert all(0.0 < r["metric"]["angle"] < 3.1416 for r in recs)
    # RLNAS legal(): nothing over the FLOPs bound was ever evaluated
    assert all(r["objectives"]["flops_lut"] <= 1.25 and r["feasible"] for r in recs)
    space = MobileNetSpace(num_classes=4, image_size=32, width_mult=0.25)
    for r in recs:
        assert space.to_str(space.parse(r["arch"])) == r["arch"]  # model_id strings
    selection = json.loads((smoke_run / "final" / "selection.json").read_text())
    assert selection["selected"]
    assert (smoke_run / "final" / selection["selected"][0]["name"] / "weights.pt").is_file()


@pytest.mark.parametrize(
    "overrides",
    [
        ["search=random", "search.n_evals=6", "search.batch_size=3"],
        ["search=nsga", "search.n_evals=8", "search.pop_size=4"],
        ["search=evolution", "search.n_evals=8", "search.population=4", "search.top_k=2"],
        [
            "search=msunas",
            "surrogate=rbf",
            "search.n_evals=10",
            "search.n_doe=6",
            "search.n_candidates=2",
            "search.surrogate_generations=2",
            "search.subset_generations=2",
        ],
        ["metric=accuracy", "metric.recal_images=16", "metric.val_images=16"],
    ],
    ids=["random", "nsga", "evolution", "msunas", "accuracy"],
)
def test_every_strategy_and_metric_runs_on_mobilenet(
    compose_cfg, smoke_run: Path, tmp_path: Path, overrides: list[str]
) -> None:
    ckpt = smoke_run / "supernet" / "final.ckpt"
    # the experiment's search node holds evolution's keys: another strategy drops them
    evolution_keys = [
        "population", "top_k", "n_mutation", "n_crossover", "mutation_prob", "generations",
        "crossover_first", "legal_only",
    ]  # fmt: skip
    switched = overrides[0].startswith("search=") and overrides[0] != "search=evolution"
    drop = [f"~search.{k}" for k in evolution_keys] if switched else []
    cfg = compose_cfg(
        "experiment=rlnas_mobilenet_smoke",
        "stages=[search,select]",
        f"supernet.checkpoint={ckpt}",
        "dataset.valid_fraction=0.5",
        "objective=flops_lut_bounded",
        "objective.costs.0.upper=1.25",
        *overrides[:1],
        *drop,
        *overrides[1:],
    )
    out = pipeline.run(cfg, tmp_path)
    recs = _records(tmp_path)
    assert out["search"]["n_evals"] == len(recs) >= 6
    assert not any(r["failed"] for r in recs)
    assert (tmp_path / "final" / "selection.json").is_file()
