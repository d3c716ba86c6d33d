"""EDANAS and NACHOS end to end: search with avg_macs, selection, the exported network exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nasx import pipeline
from nasx.config import build
from nasx.early_exit import EarlyExitInference, load_eenn
from nasx.early_exit.tuning import EPSILON_GRID, grid_thresholds
from nasx.errors import NasxError
from nasx.metric.early_exit import EENN_FILE

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ("search.n_evals=6", "search.n_doe=4", "search.n_candidates=2")


def _run(experiment: str, run_dir: Path, *overrides: str) -> Path:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tests.conftest import CONF

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}", *SMALL, *overrides])
    GlobalHydra.instance().clear()
    pipeline.run(cfg, run_dir)
    return run_dir


@pytest.fixture(scope="module")
def edanas(tmp_path_factory) -> Path:
    return _run("edanas_cifar10_smoke", tmp_path_factory.mktemp("edanas"))


@pytest.fixture(scope="module")
def nachos(tmp_path_factory) -> Path:
    return _run("nachos_cifar10_smoke", tmp_path_factory.mktemp("nachos"))


def _valid(run_dir: Path, experiment: str):
    """The run's space and its valid images (the data avg_macs was measured on)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tests.conftest import CONF

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}", *SMALL])
    GlobalHydra.instance().clear()
    data = build("dataset", cfg.dataset)
    space = build("space", cfg.space, num_classes=data.num_classes)
    data.setup(32, 3)
    return space, data.split("valid", int(cfg.metric.val_images))


@pytest.mark.parametrize("method", ["edanas", "nachos"])
def test_search_records_and_predicts_avg_macs(method: str, request) -> None:
    run = request.getfixturevalue(method)
    its = sorted((run / "search").glob("iter_*.json"))
    last = json.loads(its[-1].read_text())
    assert last["objectives"] == ["-accuracy", "avg_macs"]
    assert last["sec_surrogate"][0]["name"] == "as"  # the second surrogate's fit
    for rec in last["archive"]:
        m = rec["metric"]
        assert rec["F"][1] == pytest.approx(m["avg_macs"]) == rec["objectives"]["avg_macs"]
        assert sum(m["exits_ratio"]) == pytest.approx(1.0) and len(m["exits_ratio"]) == m["n_exits"]
        assert m["avg_macs"] == pytest.approx(
            sum(w * c for w, c in zip(m["exits_ratio"], m["inference_costs"], strict=True))
        )
        # a head can cost more than the rest of a tiny backbone, so avg_macs may exceed macs
        assert min(m["inference_costs"]) - 1e-9 <= m["avg_macs"] <= max(m["inference_costs"]) + 1e-9
        assert m["macs"] == m["exit_costs"][-1] and len(m["epsilon"]) == m["n_exits"] - 1


@pytest.mark.parametrize("method", ["edanas", "nachos"])
def test_exported_network_exits_and_spends_the_reported_macs(method: str, request) -> None:
    run = request.getfixturevalue(method)
    space, (x, y) = _valid(run, f"{method}_cifar10_smoke")
    for fdir in sorted(p for p in (run / "final").iterdir() if p.is_dir()):
        stats = json.loads((fdir / "stats.json").read_text())["metric"]
        net = load_eenn(fdir / EENN_FILE, space, count_macs=True)
        assert isinstance(net, EarlyExitInference) and not net.training
        out = net(x)
        # the MACs counted while running average to the avg_macs the search recorded
        assert float(out.macs.mean()) == pytest.approx(stats["avg_macs"], rel=1e-6)
        ratios = torch.bincount(out.exits, minlength=int(stats["n_exits"])).double() / len(y)
        assert ratios.tolist() == pytest.approx(stats["exits_ratio"])
        assert float((out.preds == y).double().mean()) == pytest.approx(stats["accuracy"])
        assert list(net.net.thresholds) == pytest.approx(stats["epsilon"])


def test_nachos_thresholds_are_tuned_and_the_search_is_feasibility_weighted(nachos) -> None:
    sel = json.loads((nachos / "final" / "selection.json").read_text())
    assert sel["objectives"] == ["-accuracy", "avg_macs"]
    for rec in json.loads(sorted((nachos / "search").glob("iter_*.json"))[-1].read_text())[
        "archive"
    ]:
        m = rec["metric"]
        eps = m["epsilon"]
        # NACHOS's grid: the first exit at max(0.7, eps), eps after; repairs only lower them
        grid = grid_thresholds(m["grid_epsilon"], int(m["n_exits"]))
        assert m["grid_epsilon"] in EPSILON_GRID and len(eps) == len(grid)
        assert all(e <= g + 1e-9 for e, g in zip(eps, grid, strict=True))
        if eps == pytest.approx(list(grid)):
            assert eps[0] >= 0.7 - 1e-9 and not m["repaired"]
        if m["repaired"]:  # repair reached the smoke preset's mmax (1.2 M MACs)
            assert m["avg_macs"] <= 1.2 + 1e-9


def test_select_filters_the_front_by_the_number_of_exits(edanas, compose_cfg) -> None:
    records = json.loads(sorted((edanas / "search").glob("iter_*.json"))[-1].read_text())["archive"]
    counts = sorted({int(r["metric"]["n_exits"]) for r in records})
    cfg = compose_cfg(
        "experiment=edanas_cifar10_smoke", *SMALL, "stages=[select]", f"select.n_exits={counts[0]}"
    )
    pipeline.run(cfg, edanas)
    for fdir in (edanas / "final").iterdir():
        if fdir.is_dir():
            stats = json.loads((fdir / "stats.json").read_text())
            assert stats["metric"]["n_exits"] == counts[0]
    absent = max(counts) + 1
    with pytest.raises(NasxError, match=f"select.n_exits={absent}"):
        pipeline.run(
            compose_cfg(
                "experiment=edanas_cifar10_smoke",
                *SMALL,
                "stages=[select]",
                f"select.n_exits={absent}",
            ),
            edanas,
        )


def test_a_corrupt_export_is_one_clear_error(tmp_path: Path, edanas) -> None:
    space, _ = _valid(edanas, "edanas_cifar10_smoke")
    bad = tmp_path / EENN_FILE
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(NasxError, match="re-run stages=\\[select\\]"):
        load_eenn(bad, space)


def test_a_space_without_the_methods_exits_stops_before_any_work(compose_cfg, tmp_path) -> None:
    from nasx.pipeline import build_parts

    with pytest.raises(NasxError, match="space=nachos_mbv3"):
        build_parts(compose_cfg("space=ee_mbv3_cpu", "metric=nachos"))
    with pytest.raises(NasxError, match="space=ee_mbv3"):
        build_parts(compose_cfg("metric=edanas"))  # the default NB201 space has no exits
