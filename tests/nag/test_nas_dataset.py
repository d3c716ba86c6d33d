"""NAG's NAS dataset: the versioned file, its builders, and the nas_dataset stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra.errors import HydraException

from nasx import pipeline
from nasx.errors import NasxError
from nasx.evaluator import Evaluator
from nasx.nag import dataset as nas
from nasx.nag.labels import param_counts
from nasx.search_space import NAGCellSpace, NB201Space
from nasx.search_space._nb201_table import load_table
from nasx.stages import stage_names

pytestmark = pytest.mark.usefixtures("one_thread")

COL = "cifar10valid_valid_acc_12ep"
LAT = "latency_ms_pixel3"
SMOKE = ("experiment=smoke",)
TABLE_STAGE = (
    "logger=none",
    "progress=false",
    "space=nb201",
    "metric=benchmark",
    "objective=none",
    "stages=[nas_dataset]",
    "nas_dataset.source=table",
)


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return NB201Space(channels=4, cells_per_stage=1, image_size=8)


def _row(arch_str: str) -> dict[str, float]:
    index, rows = load_table()
    return rows[index[arch_str]]


def _strs(space: NB201Space, ds: nas.NASDataset) -> list[str]:
    return [space.to_str(a) for a in ds.archs]


# --- the file --------------------------------------------------------------------------------
def test_round_trip_keeps_archs_values_and_provenance(space: NB201Space, tmp_path: Path) -> None:
    ds = nas.from_table(space, 25, seed=1, column=LAT)
    path = ds.save(tmp_path / "sub" / "ds.json", space)
    content = json.loads(path.read_text())
    assert (content["format"], content["version"], content["space"]) == (nas.FORMAT, 1, "nb201")
    assert content["n"] == 25 and content["score_name"] == f"-{LAT}"
    assert content["space_config"]["channels"] == 4
    assert content["records"][0]["arch"] == space.to_str(ds.archs[0])
    back = nas.NASDataset.load(path, space)
    assert back.archs == ds.archs and len(back) == 25
    np.testing.assert_array_equal(back.accuracy, ds.accuracy)  # JSON floats round-trip exactly
    np.testing.assert_array_equal(back.params, ds.params)
    assert (back.score_name, back.space, back.source) == (ds.score_name, ds.space, ds.source)
    assert not list(path.parent.glob(".*.tmp"))
    with pytest.raises(ValueError):
        ds.accuracy[0] = 1.0  # frozen: the arrays are read-only


def _corrupt(tmp_path: Path, space: NB201Space, edit) -> Path:  # type: ignore[no-untyped-def]
    path = nas.from_table(space, 3, seed=0).save(tmp_path / "ds.json", space)
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))
    return path


def _set(key: str, value: object):  # type: ignore[no-untyped-def]
    return lambda c: c.__setitem__(key, value)


def _set_record(i: int, key: str, value: object):  # type: ignore[no-untyped-def]
    return lambda c: c["records"][i].__setitem__(key, value)


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (_set("format", "nag-torch"), ["not a nasx NAS dataset", "'nag-torch'", "nas_dataset"]),
        (_set("version", 2), ["format version 2", "reads version 1", "stages=[nas_dataset]"]),
        (_set("space", "darts"), ["space 'darts', not 'nb201'", "pass the space"]),
        (_set_record(1, "genes", [0, 0, 0, 0, 0, 9]), ["record 1", "not an architecture"]),
        (_set_record(2, "genes", [1, 1, 1, 1, 1, 1]), ["record 2", "not an architecture"]),
        (_set_record(0, "arch", "|foo~0|"), ["record 0", "not an architecture"]),
        (lambda c: c["records"][0].pop("accuracy"), ["record 0 is damaged", "accuracy"]),
        (lambda c: c["records"].pop(), ["damaged", "cut"]),
        (_set_record(1, "genes", "abc"), ["record 1 is damaged"]),
    ],
    ids=["format", "version", "space", "range", "genes vs arch", "arch", "key", "cut", "type"],
)
def test_a_bad_file_is_one_clear_error(space, tmp_path: Path, edit, needles) -> None:
    path = _corrupt(tmp_path, space, edit)
    with pytest.raises(NasxError) as info:
        nas.NASDataset.load(path, space)
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_missing_not_json_and_other_space_files(space, tmp_path: Path) -> None:
    with pytest.raises(NasxError, match="does not exist.*stages=\\[nas_dataset\\]"):
        nas.NASDataset.load(tmp_path / "nope.json", space)
    torch_like = tmp_path / "nasdata_150"
    torch_like.write_bytes(b"\x80\x02}q\x00(X\x04\x00\x00\x00perf")
    with pytest.raises(NasxError, match="is not JSON.*torch.save"):
        nas.NASDataset.load(torch_like, space)
    path = nas.from_table(space, 3, seed=0).save(tmp_path / "ds.json", space)
    nag = NAGCellSpace(channels=4, cells_per_stage=1, image_size=16)
    with pytest.raises(NasxError, match="space 'nb201', not 'nag_cell'"):
        nas.NASDataset.load(path, nag)


# --- builders --------------------------------------------------------------------------------
def test_from_table_reads_the_drawn_rows_reproducibly(space: NB201Space) -> None:
    ds = nas.from_table(space, 40, seed=7)
    strs = _strs(space, ds)
    assert len(set(strs)) == 40 and ds.score_name == COL
    assert list(ds.accuracy) == [_row(s)[COL] for s in strs]
    np.testing.assert_array_equal(ds.params, param_counts(space, ds.archs))
    assert ds.source == {"kind": "table", "column": COL, "seed": 7, "n": 40}
    again = nas.from_table(space, 40, seed=7)
    assert again.archs == ds.archs and list(again.accuracy) == list(ds.accuracy)
    assert set(_strs(space, nas.from_table(space, 40, seed=8))) != set(strs)
    # the draw is uniform over the table: rows of the first 40 indices are not favoured
    index, _ = load_table()
    assert max(index[s] for s in strs) > 5000
    lat = nas.from_table(space, 5, seed=7, column=LAT)  # a latency is minimised: negated
    assert lat.score_name == f"-{LAT}"
    assert list(lat.accuracy) == [-_row(s)[LAT] for s in _strs(space, lat)]


def test_from_table_errors_name_the_fix(space: NB201Space) -> None:
    nag = NAGCellSpace(channels=4, cells_per_stage=1, image_size=16)
    with pytest.raises(NasxError, match="benchmark table.*space=nb201"):
        nas.from_table(nag, 5, seed=0)
    with pytest.raises(NasxError, match="cannot draw 15626 .* 1..15625"):
        nas.from_table(space, 15626, seed=0)
    with pytest.raises(NasxError, match="'cifar11' is not in .*cifar10_test_acc_200ep"):
        nas.from_table(space, 5, seed=0, column="cifar11")


def test_from_evaluations_orients_and_validates(space: NB201Space) -> None:
    archs = nas.sample_archs(space, 3, seed=0)
    ds = nas.from_evaluations(space, archs, [0.5, 0.1, 0.3], "flatness", maximize=False)
    assert ds.score_name == "-flatness" and list(ds.accuracy) == [-0.5, -0.1, -0.3]
    assert ds.space == "nb201" and ds.source == {}
    with pytest.raises(ValueError, match="distinct"):
        nas.from_evaluations(space, [archs[0], archs[0]], [1.0, 2.0], "x", True)
    with pytest.raises(ValueError, match="finite"):
        nas.from_evaluations(space, archs, [1.0, float("nan"), 2.0], "x", True)
    with pytest.raises(ValueError, match="3 architectures but 2 scores"):
        nas.from_evaluations(space, archs, [1.0, 2.0], "x", True)


def test_from_archive_of_a_real_search(compose_cfg, space, tmp_path: Path) -> None:
    """A minimised metric (a latency column): accuracy is -F[0], the negated latency."""
    run = tmp_path / "run"
    cfg = compose_cfg(
        *SMOKE,
        "stages=[search]",
        "metric=benchmark",
        f"metric.column={LAT}",
        "metric.higher_is_better=false",
    )
    pipeline.run(cfg, run)
    journal = run / "search" / "evaluations.jsonl"
    records = [json.loads(x) for x in journal.read_text().splitlines()]
    assert len(records) == 8
    forms = [run, run / "search", journal]
    sets = [nas.from_archive(space, p) for p in forms]
    ds = sets[0]
    assert all(d.archs == ds.archs and list(d.accuracy) == list(ds.accuracy) for d in sets)
    assert _strs(space, ds) == [r["arch"] for r in records]
    assert ds.score_name == "-benchmark"
    assert list(ds.accuracy) == [-_row(s)[LAT] for s in _strs(space, ds)]
    assert ds.source["kind"] == "archive" and ds.source["n_failed"] == 0
    # failures are left out; without iteration files the name is found in the records
    failed = dict(records[0], arch="|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    failed.update(genes=[0] * 6, failed=True, F=[1e10, 1e10])
    with journal.open("a") as fh:
        fh.write(json.dumps(failed) + "\n")
    for p in (run / "search").glob("iter_*.json"):
        p.unlink()
    again = nas.from_archive(space, journal)
    assert again.archs == ds.archs and again.score_name == "-benchmark"
    assert again.source["n_failed"] == 1 and again.source["n_records"] == 9
    with pytest.raises(NasxError, match="no search archive.*run directory"):
        nas.from_archive(space, tmp_path)
    nag = NAGCellSpace(channels=4, cells_per_stage=1, image_size=16)
    with pytest.raises(NasxError, match="not an architecture of nag_cell"):
        nas.from_archive(nag, run)


def test_from_scores_of_a_correlate_run(compose_cfg, space, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = compose_cfg(*SMOKE, "stages=[correlate]", "metric=benchmark", "correlate.archs=sample:12")
    pipeline.run(cfg, run)
    ds = nas.from_scores(space, run)
    assert len(ds) == 12 and ds.score_name == "benchmark"
    assert list(ds.accuracy) == [_row(s)[COL] for s in _strs(space, ds)]
    assert nas.from_scores(space, run / "correlate" / "scores.jsonl").archs == ds.archs
    assert ds.source["metric"] == "benchmark" and ds.source["kind"] == "scores"
    (run / "correlate" / "summary.json").unlink()
    with pytest.raises(NasxError, match="does not name the scores' metric.*stage finish"):
        nas.from_scores(space, run / "correlate")
    with pytest.raises(NasxError, match="no correlate scores"):
        nas.from_scores(space, tmp_path / "elsewhere")


# --- the stage -------------------------------------------------------------------------------
def test_stage_runs_between_supernet_and_search() -> None:
    names = stage_names()
    assert names.index("supernet") < names.index("nas_dataset") < names.index("search")


def test_stage_from_the_table_needs_no_training(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(*TABLE_STAGE, "nas_dataset.size=30", "nas_dataset.seed=4")
    out = pipeline.run(cfg, tmp_path)["nas_dataset"]
    ndir = tmp_path / "nas_dataset"
    assert not (tmp_path / "supernet").exists()
    space = pipeline.build_parts(cfg).space  # space=nb201: the paper network's parameters
    assert space.channels == 16 and space.cells_per_stage == 5
    ds = nas.NASDataset.load(ndir / "nas_dataset.json", space)
    expected = nas.from_table(space, 30, seed=4)
    assert ds.archs == expected.archs and list(ds.accuracy) == list(expected.accuracy)
    np.testing.assert_array_equal(ds.params, expected.params)
    assert out == json.loads((ndir / "summary.json").read_text())
    assert out["n"] == 30 and out["settings"] == {
        "source": "table",
        "size": 30,
        "seed": 4,
        "column": COL,
    }
    assert out["accuracy"]["max"] == pytest.approx(float(ds.accuracy.max()))
    stamp = (ndir / "nas_dataset.json").stat().st_mtime_ns
    assert pipeline.run(cfg, tmp_path)["nas_dataset"] == out  # done: skipped
    assert (ndir / "nas_dataset.json").stat().st_mtime_ns == stamp
    other = pipeline.run(
        compose_cfg(*TABLE_STAGE, "nas_dataset.size=10", "nas_dataset.seed=4"), tmp_path
    )
    assert other["nas_dataset"]["n"] == 10  # other settings: rebuilt in place


def test_stage_scores_with_the_supernet_and_resumes(
    compose_cfg, tmp_path: Path, monkeypatch
) -> None:
    cfg = compose_cfg(*SMOKE, "stages=[supernet,nas_dataset]", "nas_dataset.size=6")
    out = pipeline.run(cfg, tmp_path)["nas_dataset"]
    ndir = tmp_path / "nas_dataset"
    space = pipeline.build_parts(cfg).space
    first = nas.NASDataset.load(ndir / "nas_dataset.json", space)
    assert len(first) == 6 and first.score_name == "flatness"  # flatness: higher is better
    assert first.archs == tuple(nas.sample_archs(space, 6, seed=0))  # the run seed
    assert out["source"]["supernet"] == str(tmp_path / "supernet" / "final.ckpt")
    assert out["source"]["metric"] == "flatness" and out["source"]["n_failed"] == 0
    journal = [json.loads(x) for x in (ndir / "scores.jsonl").read_text().splitlines()]
    assert [r["metric"]["flatness"] for r in journal] == list(first.accuracy)
    # killed after 4 scores (a torn fifth line): only the 2 missing are scored again
    lines = (ndir / "scores.jsonl").read_text().splitlines(keepends=True)
    (ndir / "scores.jsonl").write_text("".join(lines[:4]) + lines[4][:20])
    (ndir / "summary.json").unlink()
    (ndir / "nas_dataset.json").unlink()
    scored: list[str] = []
    original = Evaluator._evaluate_one

    def counting(self, arch):  # type: ignore[no-untyped-def]
        scored.append(self.space.to_str(arch))
        return original(self, arch)

    monkeypatch.setattr(Evaluator, "_evaluate_one", counting)
    pipeline.run(cfg, tmp_path)
    assert scored == [space.to_str(a) for a in first.archs[4:]]
    again = nas.NASDataset.load(ndir / "nas_dataset.json", space)
    assert again.archs == first.archs
    np.testing.assert_allclose(again.accuracy, first.accuracy, rtol=1e-6)
    scored.clear()
    pipeline.run(cfg, tmp_path)  # finished: nothing is scored
    assert scored == []


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (["nas_dataset.source=bogus"], ["nas_dataset.source=bogus", "metric, table, archive"]),
        (["nas_dataset.size=0"], ["nas_dataset.size=0", "at least 1"]),
        (["nas_dataset.source=archive"], ["nas_dataset.path=<the run directory"]),
        (["nas_dataset.source=scores", "nas_dataset.path=/nonexistent"], ["no correlate scores"]),
        (["nas_dataset.size=abc"], ["nas_dataset.size"]),
    ],
    ids=["source", "size", "no path", "bad path", "type"],
)
def test_bad_settings_stop_before_any_work(compose_cfg, tmp_path: Path, overrides, needles) -> None:
    with pytest.raises((NasxError, HydraException)) as info:
        cfg = compose_cfg(*SMOKE, "stages=[supernet,nas_dataset]", *overrides)
        pipeline.run(cfg, tmp_path / "run")
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    assert not (tmp_path / "run" / "supernet").exists(), "nothing was trained"
