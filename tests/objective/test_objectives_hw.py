"""Hardware costs: bounds, activations, latency (table and LUT), tiny_ml, feasibility, configs."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from omegaconf import OmegaConf
from torch import nn

from nasx.config import build, check_node
from nasx.errors import NasxError
from nasx.objective import (
    ActivationsObjective,
    FlopsObjective,
    LatencyObjective,
    Objective,
    ParamsObjective,
    TinyMLObjective,
    check_feasible,
    count_activations,
    load_lut,
    measure_lut,
    tiny_ml,
)
from nasx.objective.lut import space_latency_keys
from nasx.search_space import Architecture, NB201Space, SearchSpace
from nasx.search_space._nb201_net import FixedCell
from nasx.search_space._nb201_table import load_table
from nasx.search_space.base import parse_latency_key as parse_key

ALL_NONE = Architecture((0,) * 6)
ALL_SKIP = Architecture((1,) * 6)
ALL_CONV1 = Architecture((2,) * 6)
ALL_CONV3 = Architecture((3,) * 6)
ALL_POOL = Architecture((4,) * 6)
MIXED = Architecture((3, 2, 4, 1, 0, 3))


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_space(**kw) -> NB201Space:
    return NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8, **kw)


def table_column(device: str) -> list[float]:
    return [row[f"latency_ms_{device}"] for row in load_table()[1]]


class Const(Objective):
    """A cost whose value is the first gene (for bound arithmetic)."""

    name = "const"

    def _compute(self, arch, space):
        return float(arch.genes[0])


# --- bounds on the base class ---------------------------------------------------------------


def test_no_bound_is_always_feasible_and_unpenalised():
    c = Const()
    assert not c.has_bound and not c.is_constraint and c.bound_text() == ""
    assert c.violation(1e30) == 0.0 and c.penalized(1e30) == 1e30 and c.feasible(-5.0)


def test_upper_bound_violation_and_constraint_handling():
    c = Const(upper=3.0)
    assert c.has_bound and c.is_constraint and c.bound_text() == "const <= 3"
    assert c.violation(2.0) == 0.0 and c.violation(3.0) == 0.0
    assert c.violation(4.5) == pytest.approx(1.5)
    assert c.feasible(3.0) and not c.feasible(3.0001)
    # "constraint": the objective is the raw value; the raw value is what __call__ returns
    assert c.penalized(4.5) == 4.5
    assert c(Architecture((4, 0, 0, 0, 0, 0)), tiny_space()) == 4.0


def test_lower_and_two_sided_bounds():
    lo = Const(lower=2.0)
    assert lo.bound_text() == "const >= 2"
    assert lo.violation(0.5) == pytest.approx(1.5) and lo.violation(7.0) == 0.0
    both = Const(lower=1.0, upper=2.0)
    assert both.bound_text() == "1 <= const <= 2"
    assert [both.violation(v) for v in (0.0, 1.0, 1.5, 2.0, 5.0)] == [1.0, 0.0, 0.0, 0.0, 3.0]
    assert Const(lower=2.0, upper=2.0).violation(2.0) == 0.0


def test_penalty_handling_is_cnas_static_exterior_penalty():
    c = Const(upper=2.0, handling="penalty", penalty=1e10)
    assert c.has_bound and not c.is_constraint
    assert c.penalized(1.5) == 1.5
    assert c.penalized(4.44) == pytest.approx(4.44 + 1e10 * 2.44, abs=1e-2)
    lo = Const(lower=10.0, handling="penalty", penalty=100.0)
    assert lo.penalized(7.0) == pytest.approx(7.0 + 300.0)


def test_nan_value_violates_any_bound():
    assert Const(upper=1.0).violation(math.nan) == math.inf
    assert not Const(lower=0.0).feasible(math.nan)
    assert Const().violation(math.nan) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"handling": "barrier"}, "handling='barrier' is unknown: use 'constraint'"),
        ({"lower": 3.0, "upper": 1.0}, "lower=3.0 > upper=1.0"),
        ({"upper": math.inf}, "upper=inf must be a finite number"),
        ({"lower": math.nan}, "lower=nan must be a finite number"),
        ({"penalty": 0.0}, "penalty=0.0 must be a positive"),
        ({"penalty": -1.0}, "penalty=-1.0 must be a positive"),
    ],
)
def test_bad_bound_arguments_raise_clear_errors(kwargs, message):
    for cls in (Const, ParamsObjective, FlopsObjective, ActivationsObjective, TinyMLObjective):
        with pytest.raises(ValueError, match=re.escape(message)):
            cls(**kwargs)


def test_bad_bound_in_a_config_is_one_nasx_error():
    node = OmegaConf.create({"_target_": "nasx.objective.FlopsObjective", "handling": "soft"})
    check_node("objective.costs[0]", node)  # the type is right: the value is wrong
    with pytest.raises(NasxError, match="invalid objective config: .*handling='soft'"):
        build("objective", node)
    bad_type = OmegaConf.create({"_target_": "nasx.objective.FlopsObjective", "upper": "a lot"})
    check_node("objective.costs[0]", bad_type)  # hydra-zen types `float | None` as Any
    with pytest.raises(NasxError, match="upper='a lot' must be a number or null"):
        build("objective", bad_type)


def test_every_cost_passes_bounds_through_and_returns_the_raw_value():
    sp = tiny_space()
    for cls in (ParamsObjective, FlopsObjective, ActivationsObjective, TinyMLObjective):
        free, bounded = cls(), cls(upper=1e-9, handling="penalty")
        assert (bounded.upper, bounded.handling) == (1e-9, "penalty")
        raw = free(ALL_CONV3, sp)
        assert bounded(ALL_CONV3, sp) == raw > 0
        assert bounded.penalized(raw) == pytest.approx(raw + 1e10 * (raw - 1e-9))
    lat = LatencyObjective(device="pixel3", lower=1.0, penalty=5.0)
    assert (lat.lower, lat.penalty, lat.handling) == (1.0, 5.0, "constraint")


# --- activations ----------------------------------------------------------------------------


def test_activations_of_a_small_sequential_by_hand():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),  # 4*8*8 = 256
        nn.BatchNorm2d(4),  # 256
        nn.ReLU(),  # not counted
        nn.MaxPool2d(2),  # 4*4*4 = 64
        nn.Sequential(nn.AvgPool2d(2), nn.Identity()),  # 4*2*2 = 16 (identity not counted)
        nn.AdaptiveAvgPool2d(2),  # not counted
        nn.Flatten(),  # 16
        nn.Linear(16, 5),  # 5
    )
    net.train()
    assert count_activations(net, (3, 8, 8)) == 256 + 256 + 64 + 16 + 16 + 5
    assert net.training  # mode restored
    assert not net[1]._forward_hooks  # hooks removed


def test_activations_of_one_nb201_cell_by_hand():
    # C=4 at 8x8: one tensor is 256 elements. 1<-0 conv3x3 (conv+BN), 2<-0 conv1x1 (conv+BN),
    # 2<-1 avg pool, 3<-0 skip (0), 3<-1 none (0), 3<-2 conv3x3 (conv+BN)
    cell = FixedCell(4, MIXED.genes, affine=True)
    assert count_activations(cell, (4, 8, 8)) == 256 * (2 + 2 + 1 + 0 + 0 + 2)


def test_activations_of_the_nas_bench_201_network_by_hand():
    sp = NB201Space()  # C=16, N=5, 32x32, 10 classes
    stem = 2 * 16 * 32 * 32
    cells = 5 * 6 * 2 * (16 * 32 * 32 + 32 * 16 * 16 + 64 * 8 * 8)
    # residual blocks: conv_a conv+BN, conv_b conv+BN, downsample avg-pool + conv
    res1 = 5 * 32 * 16 * 16 + 16 * 16 * 16
    res2 = 5 * 64 * 8 * 8 + 32 * 8 * 8
    head = 64 * 8 * 8 + 10  # last BN, classifier (global pooling is adaptive: not counted)
    expected = (stem + cells + res1 + res2 + head) / 1e6
    assert expected == pytest.approx(1.824778)
    assert ActivationsObjective()(ALL_CONV3, sp) == pytest.approx(expected, abs=1e-12)
    assert ActivationsObjective(round_to=2)(ALL_CONV3, sp) == 1.82
    with pytest.raises(ValueError, match="round_to=-1"):
        ActivationsObjective(round_to=-1)


# --- tiny_ml --------------------------------------------------------------------------------


def test_tiny_ml_reproduces_the_cnas_verified_example():
    value = tiny_ml(4.44, 21.67, 0.65, pmax=2, mmax=100, amax=5, wp=1, wm=1 / 40, wa=1, pen=1e10)
    assert value == pytest.approx(24400000005.63, abs=1e-2)


def test_tiny_ml_terms_and_defaults():
    # inside every cap: the plain weighted sum
    assert tiny_ml(1.0, 40.0, 2.0) == pytest.approx(1.0 + 1.0 + 2.0)
    # each cap penalises only its own term
    assert tiny_ml(1.0, 40.0, 6.0, pen=10.0) == pytest.approx(1 + 1 + 6 + 10)
    assert tiny_ml(3.0, 0.0, 0.0, pen=10.0, wp=2.0) == pytest.approx(2 * (3 + 10))
    assert tiny_ml(0.0, 120.0, 0.0, mmax=100.0, pen=4.0) == pytest.approx((120 + 80) / 40)
    t = TinyMLObjective()
    assert (t.pmax, t.mmax, t.amax, t.wp, t.wm, t.wa, t.pen) == (
        2.0,
        1e10,
        5.0,
        1.0,
        0.025,
        1.0,
        1e10,
    )
    assert t.penalty == 1e10 and not t.has_bound  # the base class's, for bounds on tiny_ml


def test_tiny_ml_objective_combines_params_macs_and_activations():
    sp = tiny_space()
    p = ParamsObjective()(MIXED, sp)
    m = FlopsObjective()(MIXED, sp)
    a = ActivationsObjective()(MIXED, sp)
    obj = TinyMLObjective(pmax=1.0, mmax=1.0, amax=1.0, wm=0.5, pen=1e3)
    assert obj.parts(MIXED, sp) == pytest.approx({"params": p, "macs": m, "activations": a})
    expect = tiny_ml(p, m, a, pmax=1.0, mmax=1.0, amax=1.0, wm=0.5, pen=1e3)
    assert obj(MIXED, sp) == pytest.approx(expect)
    over = TinyMLObjective(pmax=p / 2, pen=1e10)
    assert over(MIXED, sp) == pytest.approx(p + 1e10 * p / 2 + m / 40 + a, rel=1e-12)
    rounded = TinyMLObjective(round_to=2).parts(ALL_CONV3, NB201Space())
    assert rounded == {"params": 1.53, "macs": 220.12, "activations": 1.82}


# --- latency from the table -----------------------------------------------------------------


def test_table_latency_reads_the_device_column():
    sp = NB201Space()
    for device in ("pixel3", "raspi4", "1080ti_1", "latency_ms_fpga"):
        col = device.removeprefix("latency_ms_")
        lat = LatencyObjective(device=device)
        lat.check(sp)
        assert lat(MIXED, sp) == table_column(col)[sp.index(MIXED)]


def test_unknown_device_lists_the_valid_ones():
    sp = NB201Space()
    lat = LatencyObjective(device="pixel9")
    with pytest.raises(NasxError, match="unknown latency device 'pixel9'") as err:
        lat.check(sp)
    for device in ("pixel3", "raspi4", "1080ti_1", "titan_rtx_256", "eyeriss", "fpga"):
        assert device in str(err.value)
    assert "objective.device=" in str(err.value)
    with pytest.raises(NasxError, match="unknown latency device 'pixel9'"):
        lat(MIXED, sp)  # also when evaluated without a check first


def test_space_without_latency_table_is_a_clear_error():
    class NoTable(NB201Space):
        def ground_truth(self, arch):
            return {}

    with pytest.raises(NasxError, match="has no latency table: measure a LUT"):
        LatencyObjective(device="pixel3")(MIXED, NoTable())


@pytest.mark.parametrize("kwargs", [{}, {"device": "pixel3", "lut": "x.yaml"}])
def test_latency_needs_exactly_one_source(kwargs):
    with pytest.raises(ValueError, match="set either device= .* or lut="):
        LatencyObjective(**kwargs)


# --- layer keys, extremes, LUT --------------------------------------------------------------


def test_nb201_latency_keys_by_hand():
    sp = tiny_space()  # C=4, N=1, 8x8, 4 classes
    assert sp.latency_keys(MIXED) == [
        "stem-input:8x8x3-output:8x8x4",
        "nor_conv_3x3-input:8x8x4-output:8x8x4",
        "nor_conv_1x1-input:8x8x4-output:8x8x4",
        "avg_pool_3x3-input:8x8x4-output:8x8x4",
        "skip_connect-input:8x8x4-output:8x8x4",
        "nor_conv_3x3-input:8x8x4-output:8x8x4",
        "resblock-input:8x8x4-output:4x4x8",
        "nor_conv_3x3-input:4x4x8-output:4x4x8",
        "nor_conv_1x1-input:4x4x8-output:4x4x8",
        "avg_pool_3x3-input:4x4x8-output:4x4x8",
        "skip_connect-input:4x4x8-output:4x4x8",
        "nor_conv_3x3-input:4x4x8-output:4x4x8",
        "resblock-input:4x4x8-output:2x2x16",
        "nor_conv_3x3-input:2x2x16-output:2x2x16",
        "nor_conv_1x1-input:2x2x16-output:2x2x16",
        "avg_pool_3x3-input:2x2x16-output:2x2x16",
        "skip_connect-input:2x2x16-output:2x2x16",
        "nor_conv_3x3-input:2x2x16-output:2x2x16",
        "head-input:2x2x16-output:1x1x16",
        "classifier-input:16-output:4",
    ]
    big = NB201Space()
    keys = big.latency_keys(ALL_CONV3)
    assert len(keys) == 5 + 3 * 5 * 6 and len(set(keys)) == 5 + 3
    assert len(big.latency_keys(ALL_NONE)) == 5
    assert parse_key(keys[0]) == ("stem", (3, 32, 32), (16, 32, 32))
    assert parse_key(keys[-1]) == ("classifier", (64,), (10,))


def test_extremes():
    sp = tiny_space()
    assert sp.extremes() == [ALL_NONE, ALL_POOL, ALL_SKIP, ALL_CONV1, ALL_CONV3]

    class Plain(NB201Space):  # the base class's default: all-lower and all-upper genes
        extremes = SearchSpace.extremes

    assert Plain().extremes() == [ALL_NONE, ALL_POOL]


def test_lut_round_trip(tmp_path):
    sp = tiny_space()
    path = tmp_path / "lut.yaml"
    written = measure_lut(sp, path, repeats=2, number=2, n_samples=8)
    text = path.read_text()
    assert text.startswith("# nasx latency LUT") and "device=cpu" in text
    means = load_lut(path)
    assert set(means) == set(written) == set(space_latency_keys(sp))
    assert means == {k: pytest.approx(v["mean"]) for k, v in written.items()}
    assert all(v > 0 for v in means.values())
    assert all(v["var"] >= 0 for v in written.values())
    # every layer of every architecture of the space is in the LUT (the extremes cover them)
    assert {k for a in sp.enumerate()[::7] for k in sp.latency_keys(a)} <= set(means)

    lat = LatencyObjective(lut=str(path))
    lat.check(sp)
    for arch in (MIXED, ALL_CONV3, ALL_SKIP):
        assert lat(arch, sp) == pytest.approx(sum(means[k] for k in sp.latency_keys(arch)))
    assert lat(ALL_NONE, sp) < lat(ALL_CONV3, sp)
    conv3 = [f"nor_conv_3x3-input:{s}-output:{s}" for s in ("8x8x4", "4x4x8", "2x2x16")]
    assert lat(ALL_CONV3, sp) - lat(ALL_NONE, sp) == pytest.approx(6 * sum(means[k] for k in conv3))


def test_lut_errors_name_the_key_and_the_fix(tmp_path):
    sp = tiny_space()
    path = tmp_path / "lut.yaml"
    measure_lut(sp, path, repeats=1, number=1, n_samples=0)
    # another size of the same space: its keys are not in the LUT
    other = NB201Space(num_classes=4, channels=8, cells_per_stage=1, image_size=8)
    with pytest.raises(NasxError, match=r"no entry for layer 'stem-input:8x8x3-output:8x8x8'.*"):
        LatencyObjective(lut=str(path)).check(other)
    with pytest.raises(NasxError, match=re.escape(f"measure_lut(space, '{path}')")):
        LatencyObjective(lut=str(path))(ALL_CONV3, other)
    with pytest.raises(NasxError, match="does not exist"):
        LatencyObjective(lut=str(tmp_path / "missing.yaml")).check(sp)
    bad = tmp_path / "bad.yaml"
    bad.write_text("stem-input:8x8x3-output:8x8x4: {var: 1.0}\n")
    with pytest.raises(NasxError, match="has no finite 'mean'"):
        load_lut(bad)
    bad.write_text("[1, 2]\n")
    with pytest.raises(NasxError, match="not a mapping"):
        load_lut(bad)
    bad.write_text("a: [\n")
    with pytest.raises(NasxError, match="not valid YAML"):
        load_lut(bad)
    with pytest.raises(ValueError, match="repeats=0"):
        measure_lut(sp, path, repeats=0)


# --- feasibility ----------------------------------------------------------------------------


def test_no_bound_is_trivially_feasible():
    assert check_feasible(tiny_space(), [FlopsObjective(), LatencyObjective(device="x")]) == 1.0


def test_table_bound_scans_the_whole_space_for_the_exact_fraction():
    sp = NB201Space()
    col = table_column("pixel3")
    upper = sorted(col)[len(col) // 4]
    lat = LatencyObjective(device="pixel3", upper=upper)
    assert check_feasible(sp, [lat]) == pytest.approx(sum(v <= upper for v in col) / len(col))
    both = LatencyObjective(device="pixel3", lower=upper, upper=max(col), handling="penalty")
    assert check_feasible(sp, [both]) == pytest.approx(sum(v >= upper for v in col) / len(col))


def test_impossible_single_bound_names_the_best_value_and_the_fix():
    sp = NB201Space()
    best = min(table_column("raspi4"))
    costs = [FlopsObjective(), LatencyObjective(device="raspi4", upper=best / 2)]
    with pytest.raises(NasxError) as err:
        check_feasible(sp, costs)
    msg = str(err.value)
    assert "scanned all 15625 architectures" in msg
    assert f"objective.costs.1 (latency <= {best / 2:g}): best {best:.6g}" in msg
    fix = re.search(r"raise objective\.costs\.1\.upper to at least ([0-9.e+-]+)", msg)
    assert fix is not None and float(fix.group(1)) >= best
    costs[1] = LatencyObjective(device="raspi4", upper=float(fix.group(1)))
    assert check_feasible(sp, costs) > 0


def test_jointly_impossible_bounds_are_reported_with_a_joint_fix():
    sp = tiny_space()
    params = ParamsObjective()
    p_none, p_conv3 = params(ALL_NONE, sp), params(ALL_CONV3, sp)
    # each bound alone is met (all-none is fast, all-conv3x3 is big), but not both at once
    fast = min(table_column("pixel3"))
    costs = [
        LatencyObjective(device="pixel3", upper=fast * 1.01),
        ParamsObjective(lower=p_conv3),
    ]
    assert check_feasible(sp, [costs[0]]) > 0
    # the fraction is over the sampled architectures (the extremes are checked, not counted)
    drawn = [sp.sample(rng) for rng in [np.random.default_rng(0)] for _ in range(4)]
    expected = np.mean([costs[1].feasible(costs[1](a, sp)) for a in drawn])
    assert check_feasible(sp, [costs[1]], n_samples=4) == pytest.approx(expected)
    with pytest.raises(NasxError) as err:
        check_feasible(sp, costs, n_samples=16, seed=3)
    msg = str(err.value)
    assert "checked 5 extreme and 16 sampled architectures" in msg
    assert "objective.costs.0 (latency <= " in msg and "objective.costs.1 (params >= " in msg
    assert f"best {p_conv3:.6g}" in msg and p_none < p_conv3
    assert "Fix: " in msg and "meets every bound" in msg
    # applying every suggested relaxation makes the named architecture feasible
    fixes = re.findall(
        r"objective\.costs\.(\d)\.(upper|lower) to at (?:least|most) ([0-9.e+-]+)", msg
    )
    assert fixes
    for i, kind, value in fixes:
        setattr(costs[int(i)], kind, float(value))
    named = sp.parse(re.search(r"\(then (\S+) meets every bound\)", msg).group(1))
    assert all(c.feasible(c(named, sp)) for c in costs)
    # no longer raises, and the fraction counts the sampled architectures meeting every bound
    rng = np.random.default_rng(3)
    drawn = [sp.sample(rng) for _ in range(16)]
    expected = np.mean([all(c.feasible(c(a, sp)) for c in costs) for a in drawn])
    assert check_feasible(sp, costs, n_samples=16, seed=3) == pytest.approx(expected)


def test_feasible_sample_fraction_is_over_the_random_sample():
    sp = tiny_space()
    flops = FlopsObjective()
    lo, hi = flops(ALL_NONE, sp), flops(ALL_CONV3, sp)
    frac = check_feasible(sp, [FlopsObjective(upper=(lo + hi) / 2)], n_samples=20, seed=1)
    assert 0 < frac <= 1 and frac * 20 == pytest.approx(round(frac * 20))
    # FLOPs count no pooling: all-none, all-skip and all-pool meet it, all-conv cells do not
    assert check_feasible(sp, [FlopsObjective(upper=lo)], n_samples=0) == pytest.approx(3 / 5)


# --- configs --------------------------------------------------------------------------------

NEW_OPTIONS = ["latency", "activations", "tiny_ml", "flops_bounded"]


@pytest.mark.parametrize("option", NEW_OPTIONS)
def test_new_objective_configs_compose_instantiate_and_compute(compose_cfg, option):
    cfg = compose_cfg(f"objective={option}", "space=nb201_cpu")
    space = build("space", cfg.space)
    assert (space.cells_per_stage, space.input_shape) == (1, (3, 16, 16))
    for i, node in enumerate(cfg.objective.costs):
        check_node(f"objective.costs[{i}]", node)
        cost = build("objective", node)
        assert isinstance(cost, Objective)
        cost.check(space)
        value = cost(MIXED, space)
        assert math.isfinite(value) and value > 0
    if option == "flops_bounded":
        assert cost.is_constraint and cost.upper == 5.0
        assert 0 < check_feasible(space, [cost], n_samples=8) <= 1


def test_latency_config_short_overrides(compose_cfg, tmp_path):
    sp = build("space", compose_cfg().space)
    cfg = compose_cfg("objective=latency", "objective.device=raspi4")
    assert (
        build("objective", cfg.objective.costs[0])(MIXED, sp)
        == (table_column("raspi4")[sp.index(MIXED)])
    )
    cfg = compose_cfg("objective=latency", "objective.costs.0.device=fpga")
    assert build("objective", cfg.objective.costs[0]).device == "fpga"
    with pytest.raises(NasxError, match="unknown latency device 'nope'"):
        build(
            "objective",
            compose_cfg("objective=latency", "objective.device=nope").objective.costs[0],
        ).check(sp)
    path = tmp_path / "lut.yaml"
    measure_lut(sp, path, repeats=1, number=1, n_samples=0)
    cfg = compose_cfg("objective=latency", "objective.device=null", f"objective.lut={path}")
    lat = build("objective", cfg.objective.costs[0])
    assert lat(MIXED, sp) == pytest.approx(sum(load_lut(path)[k] for k in sp.latency_keys(MIXED)))
    with pytest.raises(NasxError, match="objective.device=null"):
        build(
            "objective",
            compose_cfg("objective=latency", f"objective.lut={path}").objective.costs[0],
        )
