"""Post-search selection, non-dominated sets and hypervolume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from nasx import pipeline
from nasx.config import check_config
from nasx.errors import NasxError
from nasx.hypervolume import hypervolume, non_dominated
from nasx.select import (
    asf_values,
    first_objective_errors,
    first_objective_ideal,
    parse_preference,
    select_architectures,
    tradeoff_scores,
)


def records(F, failed=()):
    return [
        {"arch": f"a{i}", "F": list(map(float, f)), "failed": i in failed} for i, f in enumerate(F)
    ]


def knee_front() -> np.ndarray:
    """A convex front of two straight pieces meeting at the clear knee (0.1, 0.1), index 5."""
    x1 = np.linspace(0.0, 0.1, 6)
    x2 = np.linspace(0.1, 1.0, 10)[1:]
    return np.r_[np.c_[x1, 1 - 9 * x1], np.c_[x2, 0.1 - 0.1 * (x2 - 0.1) / 0.9]]


# --- non-dominated sets --------------------------------------------------------------------


def test_non_dominated_on_a_known_set():
    F = np.array(
        [
            [1.0, 5.0],  # 0 front
            [2.0, 3.0],  # 1 front
            [3.0, 3.0],  # 2 dominated by 1
            [4.0, 1.0],  # 3 front
            [5.0, 1.0],  # 4 dominated by 3
            [2.5, 4.0],  # 5 dominated by 1
            [6.0, 0.5],  # 6 front
        ]
    )
    assert sorted(non_dominated(F).tolist()) == [0, 1, 3, 6]
    assert non_dominated(np.zeros((0, 2))).tolist() == []
    assert non_dominated(np.array([[3.0, 3.0]])).tolist() == [0]


def test_non_dominated_three_objectives_and_duplicates():
    F = np.array([[1, 2, 3], [2, 1, 3], [1, 2, 4], [3, 3, 1], [2, 2, 3]], dtype=float)
    assert sorted(non_dominated(F).tolist()) == [0, 1, 3]


def test_select_returns_exactly_the_front_best_first():
    F = np.array([[3.0, 1.0], [1.0, 5.0], [2.0, 3.0], [2.5, 4.0], [1.5, 6.0], [4.0, 0.5]])
    chosen = select_architectures(records(F), n_tradeoffs=0)
    assert [s.record["arch"] for s in chosen] == ["a1", "a2", "a0", "a5"]
    assert [s.name for s in chosen] == ["front_00", "front_01", "front_02", "front_03"]
    assert chosen[0].reasons == ("non_dominated", "best_first_objective")
    assert all(s.reasons == ("non_dominated",) for s in chosen[1:])


def test_select_single_objective_picks_the_best():
    F = np.array([[0.5], [0.2], [0.9]])
    chosen = select_architectures(records(F), n_tradeoffs=3)
    assert [s.record["arch"] for s in chosen] == ["a1"]
    assert "high_tradeoff" not in chosen[0].reasons


def test_select_ignores_failed_records():
    F = np.array([[-100.0, -100.0], [1.0, 2.0], [2.0, 1.0], [3.0, 3.0]])
    chosen = select_architectures(records(F, failed={0}), n_tradeoffs=1)
    assert sorted(s.record["arch"] for s in chosen) == ["a1", "a2"]
    assert select_architectures(records(F[:1], failed={0}), n_tradeoffs=1) == []
    assert select_architectures([], n_tradeoffs=1) == []


def test_select_marks_the_knee_as_high_tradeoff():
    F = knee_front()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(F))
    recs = records(F[order])
    knee = f"a{int(np.flatnonzero(order == 5)[0])}"
    chosen = select_architectures(recs, n_tradeoffs=1)
    assert len(chosen) == len(F)
    marked = [s.record["arch"] for s in chosen if "high_tradeoff" in s.reasons]
    assert marked == [knee]
    # the front comes back sorted by the first objective
    firsts = [s.record["F"][0] for s in chosen]
    assert firsts == sorted(firsts)


def test_tradeoff_scores_rank_the_knee_first():
    mu = tradeoff_scores(knee_front())
    assert int(np.argmax(mu)) == 5
    assert mu[5] > 5 * np.delete(mu, 5).max()
    assert tradeoff_scores(knee_front()[:2]).tolist() == [0.0, 0.0]


def test_more_tradeoffs_than_points_marks_each_point_once():
    F = knee_front()
    chosen = select_architectures(records(F), n_tradeoffs=100)
    assert sum("high_tradeoff" in s.reasons for s in chosen) <= len(F)
    assert any(s.record["arch"] == "a5" and "high_tradeoff" in s.reasons for s in chosen)


# --- hypervolume ---------------------------------------------------------------------------


def test_hypervolume_of_a_known_set():
    F = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    ref = np.array([4.0, 4.0])
    # strips x in [1,2): 1, [2,3): 2, [3,4): 3
    assert hypervolume(F, ref) == pytest.approx(6.0)
    # dominated points and points beyond the reference add nothing
    more = np.r_[F, [[3.0, 3.0], [5.0, 0.0], [2.5, 2.5]]]
    assert hypervolume(more, ref) == pytest.approx(6.0)
    assert hypervolume(np.array([[0.0, 0.0]]), ref) == pytest.approx(16.0)
    assert hypervolume(np.zeros((0, 2)), ref) == 0.0


def test_hypervolume_three_objectives():
    F = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    ref = np.array([2.0, 2.0, 2.0])
    # box 2*2*1 + box 1*1*2 - overlap 1*1*1
    assert hypervolume(F, ref) == pytest.approx(5.0)


# --- preferences (NSGANetV2 --prefer) ------------------------------------------------------

NAMES = ["-accuracy", "flops"]


@pytest.mark.parametrize(
    ("text", "ideal", "weights"),
    [
        ("top1#80+flops#150", None, (20.0, 150.0)),  # NSGANetV2's example, percent top-1
        ("top1#80+flops#150", 100.0, (20.0, 150.0)),
        ("top1#80+flops#150", 1.0, (0.2, 150.0)),  # the same preference, accuracy as fraction
        ("accuracy#0.9+flops#150", 1.0, (0.1, 150.0)),
        ("-accuracy#0.9+flops#150", 1.0, (0.1, 150.0)),  # the F column names it too
        ("flops#150+top1#80", None, (20.0, 150.0)),  # any order
        (" top1 # 80 + flops # 1.5e2 ", None, (20.0, 150.0)),
    ],
)
def test_parse_preference(text, ideal, weights):
    assert parse_preference(text, NAMES, ideal) == pytest.approx(weights)


def test_parse_preference_other_objectives():
    assert parse_preference("flatness#0.5+params#2", ["flatness", "params"]).tolist() == [
        0.5,
        2.0,
    ]
    # a minimised metric has no top1; a single objective needs just one value
    with pytest.raises(NasxError, match="unknown key 'top1'"):
        parse_preference("top1#80+params#2", ["flatness", "params"])
    assert parse_preference("top1#75", ["-benchmark"]).tolist() == [25.0]


@pytest.mark.parametrize(
    "text",
    [
        "top1",
        "top1#",
        "top1#abc",
        "flops#-3",
        "foo#1",
        "top1#80+top1#70",
        "top1#80+accuracy#0.7+flops#1",
        "top1#80+flops#1+flops#2",
        "top1#80++flops#1",
        "+top1#80+flops#1",
        "top1#80+flops#1+",
        "",
        "#5+flops#1",
        "top1#80",
        "flops#150",
        "top1#nan+flops#1",
        "top1#inf+flops#1",
        "top1#0+flops#1",
        "__import__('os')#1",
        "top1#__import__('os').getcwd()+flops#1",
    ],
)
def test_malformed_preference_names_the_form_and_the_keys(text):
    with pytest.raises(NasxError) as info:
        parse_preference(text, NAMES)
    msg = str(info.value)
    assert "\n" not in msg
    assert "key#value+key#value" in msg
    assert "keys: accuracy, -accuracy, top1, flops" in msg


def test_preference_values_beyond_the_ideal_are_refused():
    with pytest.raises(NasxError, match="below 100"):
        parse_preference("top1#100+flops#1", NAMES)
    with pytest.raises(NasxError, match="below the metric's ideal 1"):
        parse_preference("accuracy#1.5+flops#1", NAMES, ideal=1.0)
    with pytest.raises(NasxError, match="top1 needs an accuracy"):
        parse_preference("top1#80+flops#1", NAMES, ideal=1234.0)


def test_first_objective_as_an_error():
    F = np.array([[-0.9, 1.0], [-0.7, 2.0]])
    assert first_objective_ideal(F[:, 0], maximised=True) == 1.0
    assert first_objective_errors(F, True)[:, 0] == pytest.approx([0.1, 0.3])
    assert first_objective_errors(F, True)[:, 1].tolist() == [1.0, 2.0]  # costs as they are
    pct = F * [100, 1]
    assert first_objective_ideal(pct[:, 0], maximised=True) == 100.0
    assert first_objective_errors(pct, True)[:, 0] == pytest.approx([10.0, 30.0])
    big = F * [1000, 1]  # an unbounded proxy: measured from the best archive score
    assert first_objective_errors(big, True)[:, 0] == pytest.approx([0.0, 200.0])
    low = np.array([[0.2, 1.0], [0.5, 1.0]])  # a minimised metric: as it is
    assert first_objective_errors(low, False)[:, 0].tolist() == [0.2, 0.5]
    neg = np.array([[-0.2, 1.0], [0.5, 1.0]])
    assert first_objective_errors(neg, False)[:, 0] == pytest.approx([0.0, 0.7])


def accuracy_front(scale: float = 1.0) -> list[dict]:
    """Four front points and a dominated one; accuracy as a fraction (or x ``scale``)."""
    acc = [0.95, 0.90, 0.85, 0.70, 0.80]
    flops = [300.0, 150.0, 100.0, 50.0, 200.0]
    return [
        {
            "arch": f"a{i}",
            "F": [-a * scale, f],
            "metric": {"accuracy": a * scale},
            "objectives": {"flops": f},
            "failed": False,
        }
        for i, (a, f) in enumerate(zip(acc, flops, strict=True))
    ]


def test_asf_is_the_max_of_the_weighted_errors():
    E = np.array([[0.05, 300.0], [0.1, 150.0], [0.15, 100.0], [0.3, 50.0]])
    w = np.array([0.1, 150.0])
    assert asf_values(E, w) == pytest.approx([2.0, 1.0, 1.5, 3.0])
    assert asf_values(E, w) == pytest.approx((E / w).max(axis=1))


@pytest.mark.parametrize(
    ("scale", "prefer"),
    [
        (1.0, "accuracy#0.9+flops#150"),
        (1.0, "top1#90+flops#150"),
        (100.0, "top1#90+flops#150"),
        (100.0, "accuracy#90+flops#150"),
    ],
)
def test_prefer_ranks_the_front_by_asf(scale, prefer):
    # errors (0.05, 0.10, 0.15, 0.30) / 0.1 against flops (300, 150, 100, 50) / 150:
    # ASF = 2, 1, 1.5, 3 -> a1, a2, a0, a3; a4 is dominated
    recs = accuracy_front(scale)
    chosen = select_architectures(recs, mode="prefer", prefer=prefer, n=2, objective_names=NAMES)
    assert [(s.name, s.record["arch"]) for s in chosen] == [
        ("prefer_00", "a1"),
        ("prefer_01", "a2"),
        ("best", "a0"),  # the most accurate point is always added
    ]
    assert chosen[0].info["asf"] == pytest.approx(1.0)
    assert chosen[0].info["prefer"] == prefer
    assert chosen[2].reasons == ("best_first_objective",)
    three = select_architectures(recs, mode="prefer", prefer=prefer, n=3, objective_names=NAMES)
    assert [s.record["arch"] for s in three] == ["a1", "a2", "a0"]
    assert three[2].reasons == ("preference", "best_first_objective")
    assert [s.rank for s in three] == [0, 1, 2]


def test_prefer_errors_reach_the_user():
    with pytest.raises(NasxError, match="key#value"):
        select_architectures(accuracy_front(), mode="prefer", prefer="x#1", objective_names=NAMES)
    with pytest.raises(NasxError, match="select.mode=prefer needs"):
        select_architectures(accuracy_front(), mode="prefer", objective_names=NAMES)
    with pytest.raises(NasxError, match="select.mode='bogus'"):
        select_architectures(accuracy_front(), mode="bogus")


# --- lowest (CNAS --prefer <objective>) ----------------------------------------------------


def test_lowest_picks_the_cheapest_front_points_and_the_most_accurate():
    recs = accuracy_front()
    for objective in ("flops", None):
        chosen = select_architectures(
            recs, mode="lowest", objective=objective, n=3, objective_names=NAMES
        )
        assert [(s.name, s.record["arch"]) for s in chosen] == [
            ("lowest_flops_00", "a3"),
            ("lowest_flops_01", "a2"),
            ("lowest_flops_02", "a1"),
            ("best", "a0"),
        ]
        assert chosen[0].info == {"objective": "flops", "value": 50.0}
    by_metric = select_architectures(
        recs, mode="lowest", objective="accuracy", n=2, objective_names=NAMES
    )
    assert [(s.name, s.record["arch"]) for s in by_metric] == [
        ("lowest_accuracy_00", "a0"),
        ("lowest_accuracy_01", "a1"),
    ]
    assert by_metric[0].reasons == ("lowest_accuracy", "best_first_objective")
    with pytest.raises(NasxError, match="select.objective='latency'.*accuracy, -accuracy, flops"):
        select_architectures(recs, mode="lowest", objective="latency", n=2, objective_names=NAMES)


def test_single_objective_modes_rank_the_whole_archive():
    recs = records(np.array([[0.5], [0.2], [0.9], [0.1]]))
    lowest = select_architectures(recs, mode="lowest", n=3)
    assert [s.record["arch"] for s in lowest] == ["a3", "a1", "a0"]
    pref = select_architectures(recs, mode="prefer", prefer="f0#1", n=2)
    assert [s.record["arch"] for s in pref] == ["a3", "a1"]
    # tradeoff keeps today's behaviour: the front, i.e. the single best
    assert [s.record["arch"] for s in select_architectures(recs, mode="tradeoff")] == ["a3"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "tradeoff", "n_tradeoffs": 2},
        {"mode": "prefer", "prefer": "top1#50+flops#1000", "n": 1},  # favours a3
        {"mode": "lowest", "n": 1},
    ],
)
def test_the_most_accurate_point_is_always_selected(kwargs):
    rng = np.random.default_rng(1)
    recs = accuracy_front()
    recs = [recs[i] for i in rng.permutation(len(recs))]
    chosen = select_architectures(recs, objective_names=NAMES, **kwargs)
    best = [s for s in chosen if "best_first_objective" in s.reasons]
    assert [s.record["arch"] for s in best] == ["a0"]


# --- n_exits ---------------------------------------------------------------------------------


def test_n_exits_filters_and_is_an_error_without_exits():
    recs = accuracy_front()
    for i, r in enumerate(recs):
        (r["objectives"] if i % 2 else r["metric"])["n_exits"] = 1 + i % 2
    chosen = select_architectures(recs, mode="lowest", n=5, n_exits=2, objective_names=NAMES)
    assert sorted(s.record["arch"] for s in chosen) == ["a1", "a3"]
    assert len(select_architectures(recs, mode="lowest", n=5, objective_names=NAMES)) == 4
    with pytest.raises(NasxError, match="no architecture has that many; found 1, 2"):
        select_architectures(recs, n_exits=3, objective_names=NAMES)
    with pytest.raises(NasxError, match="no early exits.*select.n_exits=null"):
        select_architectures(accuracy_front(), n_exits=1, objective_names=NAMES)


# --- normalisation of the trade-off radius ---------------------------------------------------


def test_normalize_switch_changes_the_knee():
    """With flops 100x the accuracy scale, the raw 0.125 radius (CNAS HEAD) sees another knee."""
    F = knee_front() * [1.0, 100.0]
    assert int(np.argmax(tradeoff_scores(F))) == 5
    assert int(np.argmax(tradeoff_scores(F, normalize=False))) == 14

    def knee(normalize: bool) -> str:
        chosen = select_architectures(records(F), n_tradeoffs=1, normalize=normalize)
        (pick,) = [s for s in chosen if "high_tradeoff" in s.reasons]
        assert pick.name == "tradeoff_00" and pick.rank == 0 and pick.info["mu"] > 0
        return pick.record["arch"]

    assert knee(True) == "a5"
    assert knee(False) == "a14"


# --- config checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["select.mode=bogus"], "select.mode=bogus: not a selection mode; use one of tradeoff"),
        (["select.mode=prefer"], "select.mode=prefer needs a preference"),
        (["select.n=-1"], "select.n=-1: select at least one architecture"),
        (["select.n_tradeoffs=-2"], "select.n_tradeoffs=-2"),
        (["select.n_exits=0"], "select.n_exits=0"),
        (["select.mode=prefer", "select.prefer='top1#80'"], "no value for flops"),
        (["select.mode=prefer", "select.prefer='top1#abc+flops#1'"], "key#value+key#value"),
        (["select.prefer='top1#80+flops#1'"], "only read with select.mode=prefer"),
        (["select.mode=lowest", "select.objective=latency"], "use one of flatness, -flatness"),
        (["select.objective=flops"], "only read with select.mode=lowest"),
    ],
)
def test_select_config_errors(compose_cfg, overrides, needle):
    with pytest.raises(NasxError) as info:
        check_config(compose_cfg("experiment=smoke", *overrides))
    assert needle in str(info.value)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["select.mode=prefer", "select.prefer='top1#80+flops#0.05'"],
        ["select.mode=prefer", "select.prefer='flatness#0.5+flops#0.05'", "select.n=1"],
        ["select.mode=lowest", "select.objective=flops", "select.normalize=false"],
        ["select.mode=lowest"],
    ],
)
def test_select_config_valid(compose_cfg, overrides):
    check_config(compose_cfg("experiment=smoke", *overrides))


# --- the select stage ------------------------------------------------------------------------


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_select_stage_in_prefer_mode_on_a_finished_search(compose_cfg, tmp_path):
    """A finished (tradeoff) run, then stages=[select] with a preference in the same dir."""
    run_dir = tmp_path / "run"
    common = ["experiment=smoke", "metric=benchmark", "search.n_evals=12", "search.pop_size=6"]
    pipeline.run(compose_cfg(*common, "stages=[search,select]"), run_dir)
    final = run_dir / "final"
    first = json.loads((final / "selection.json").read_text())
    assert first["settings"]["mode"] == "tradeoff"
    assert (final / "front_00" / "arch.txt").is_file()
    # a marker from before select.mode held no settings; a folder with a user's file is kept
    del first["settings"]
    (final / "selection.json").write_text(json.dumps(first))
    (final / "front_00" / "notes.txt").write_text("mine")

    prefer = ["select.mode=prefer", "select.prefer='top1#85+flops#0.05'", "select.n=2"]
    cfg = compose_cfg(*common, "stages=[select]", *prefer)
    pipeline.run(cfg, run_dir)
    marker = json.loads((final / "selection.json").read_text())
    names = [s["name"] for s in marker["selected"]]
    assert names[:2] == ["prefer_00", "prefer_01"] and set(names) <= {
        "prefer_00",
        "prefer_01",
        "best",
    }
    assert marker["objectives"] == ["-benchmark", "flops"]
    # the earlier selection's folders were replaced, but for the one holding other files
    folders = sorted(p.name for p in final.iterdir() if p.is_dir())
    assert folders == sorted([*names, "front_00"])
    assert (final / "front_00" / "notes.txt").read_text() == "mine"
    for name in names:
        assert (final / name / "arch.txt").is_file()
        assert (final / name / "config.json").is_file()
    stats = json.loads((final / "prefer_00" / "stats.json").read_text())
    assert stats["mode"] == "prefer" and stats["rank"] == 0
    assert stats["chosen_by"]["prefer"] == "top1#85+flops#0.05"
    assert stats["chosen_by"]["weights"] == pytest.approx([15.0, 0.05])

    front = _csv(final / "front.csv")
    assert front and {"arch", "benchmark", "flops", "selected", "name"} <= set(front[0])
    selected = {r["name"] for r in front if r["selected"] == "yes"}
    assert selected <= set(names) and "prefer_00" in selected
    assert float(front[0]["benchmark"]) == max(float(r["benchmark"]) for r in front)
    results = _csv(final / "results.csv")
    n_records = len((run_dir / "search" / "evaluations.jsonl").read_text().splitlines())
    assert len(results) == n_records
    assert {"arch", "failed", "benchmark", "flops"} <= set(results[0])

    # the same settings again: skipped, nothing rewritten
    stamp = (final / "selection.json").stat().st_mtime_ns
    pipeline.run(compose_cfg(*common, "stages=[select]", *prefer), run_dir)
    assert (final / "selection.json").stat().st_mtime_ns == stamp
    # other settings: selected again
    pipeline.run(
        compose_cfg(*common, "stages=[select]", "select.mode=lowest", "select.n=1"), run_dir
    )
    folders = sorted(p.name for p in final.iterdir() if p.is_dir())
    assert "lowest_flops_00" in folders and not any(f.startswith("prefer") for f in folders)


# --- CNAS's knee in CNAS's units (select.normalize=false) ----------------------------------

# CNAS@2022 "noconstraintsFR" run (reference notes §7a): the front runs from 2.14 M params at
# 11.38 % error to 4.37 M at 5.40 %, and post_search chose the trade-off net at 2.53 M params;
# the points between are placed on that curve.
FR_PARAMS = [2.14, 2.30, 2.53, 3.00, 3.60, 4.37]
FR_ERR = [11.38, 8.9, 6.6, 6.2, 5.8, 5.40]


def cnas_mu(E: np.ndarray, i: int) -> float:
    """CNAS HEAD's HighTradeoffPoints mu without normalisation, by hand (m = 2)."""
    d = np.linalg.norm(E - E[i], axis=1)
    near = [j for j in np.flatnonzero(d <= 0.125) if j != i]
    if len(near) < 4:
        near = [j for j in np.argsort(d) if j != i][:4]
    return min(np.maximum(0, E[j] - E[i]).sum() / np.maximum(0, E[i] - E[j]).sum() for j in near)


def test_unnormalised_knee_is_measured_in_error_percent():
    from nasx.evaluator import objective_units
    from nasx.metric import AccuracyMetric

    # nasx's accuracy metric is a fraction: F = (-accuracy, params in M)
    recs = [
        {"arch": f"a{i}", "F": [-(100 - e) / 100, p]}
        for i, (p, e) in enumerate(zip(FR_PARAMS, FR_ERR, strict=True))
    ]
    units = objective_units(AccuracyMetric(), 1)
    chosen = select_architectures(
        recs, 1, normalize=False, objective_names=["-accuracy", "params"], units=units
    )
    knee = [s for s in chosen if "high_tradeoff" in s.reasons]
    E = np.array([FR_ERR, FR_PARAMS]).T
    mus = [cnas_mu(E, i) for i in range(len(E))]
    assert knee[0].record["arch"] == f"a{int(np.argmax(mus))}" == "a2"  # the 2.53 M net
    assert knee[0].info["mu"] == pytest.approx(max(mus))
    # measured on the accuracy fraction instead, the radius sees another front: another knee
    plain = select_architectures(recs, 1, normalize=False, objective_names=["-accuracy", "params"])
    assert [s.record["arch"] for s in plain if "high_tradeoff" in s.reasons] != ["a2"]
