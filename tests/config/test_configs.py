"""Every config file composes and instantiates (lightning-hydra-template rule 11)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from scipy import stats

from nasx.config import build, check_config, fingerprint, recipe_node
from nasx.pipeline import build_parts
from tests.conftest import CONF

GROUPS = [
    "space",
    "dataset",
    "supernet",
    "metric",
    "objective",
    "search",
    "surrogate",
    "trainer",
    "logger",
    "retrain",
]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_CONV3 = ALL_NONE.replace("none", "nor_conv_3x3")
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def test_every_group_has_options() -> None:
    assert {g for g, _ in OPTIONS} == set(GROUPS)
    assert {"smoke", "genas_nb201", "rlnas_nb201"} <= set(EXPERIMENTS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_instantiates(compose_cfg, group: str, option: str, tmp_path) -> None:
    # a predictor drives search=msunas; a lookup-table cost needs a space with the table
    extra = {("surrogate", o): ["search=msunas"] for o in ("as", "carts", "gp", "mlp", "rbf")} | {
        ("objective", "flops_lut_bounded"): ["space=mobilenet_cpu"],
        ("dataset", "imagenet"): ["metric=angle"],  # RLNAS trains on every image: no valid split
        ("objective", "avg_macs"): ["space=ee_mbv3_cpu"],  # measured by the space's EDANAS metric
        # an early-exit metric needs its method's space
        ("metric", "edanas"): ["space=ee_mbv3_cpu"],
        ("metric", "edanas_cpu"): ["space=ee_mbv3_cpu"],
        ("metric", "nachos"): ["space=nachos_mbv3_cpu"],
        ("metric", "nachos_cpu"): ["space=nachos_mbv3_cpu"],
    }
    cfg = compose_cfg(f"{group}={option}", *extra.get((group, option), []))
    check_config(cfg)
    node = cfg[group]
    if group == "trainer":
        make = instantiate(node, _partial_=True)
        if node.accelerator == "gpu" and not torch.cuda.is_available():
            make.keywords["accelerator"] = "cpu"  # the rest of the node is still checked
            make.keywords["devices"] = 1
            make.keywords["precision"] = (
                "32-true"
                if make.keywords["precision"] == "16-mixed"
                else make.keywords["precision"]
            )
        trainer = make(max_epochs=1, logger=False)
        # the preset's values reach the Trainer
        assert trainer.precision == make.keywords["precision"]
        assert trainer.log_every_n_steps == node.log_every_n_steps
    elif group == "logger":
        obj = instantiate(
            node, **({"save_dir": str(tmp_path)} if "Dummy" not in node._target_ else {})
        )
        obj.log_metrics({"search/hv": 0.5}, step=0)
        obj.save()
        if option == "csv":  # the file logger writes what it was given
            (metrics,) = tmp_path.rglob("metrics.csv")
            assert "search/hv" in metrics.read_text() and "0.5" in metrics.read_text()
    elif group == "objective":
        # every cost orders the space's extremes: the first is cheaper than the last
        space = build_parts(cfg).space
        small, large = space.extremes()[0], space.extremes()[-1]
        for cost in (instantiate(c) for c in node.costs):
            if cost.measured:  # avg_macs: measured by the metric, refused on an arch alone
                with pytest.raises(ValueError, match="measured by the metric"):
                    cost(small, space)
                continue
            lo, hi = cost(small, space), cost(large, space)
            assert 0 <= lo < hi, (cost.name, lo, hi)
    elif group == "supernet":
        recipe = build("supernet", recipe_node(cfg))
        assert recipe.random_labels == (option == "rlnas")  # RLNAS trains on random labels
        opt = recipe.optimizer([torch.nn.Parameter(torch.zeros(1))])
        assert opt.param_groups[0]["lr"] == cfg.supernet.optimizer.lr
    elif group == "surrogate":
        if option == "none":
            assert "_target_" not in node  # plain NSGA-II, no predictor
        else:
            if option == "as":
                node.members = {"carts": {"n_tree": 20}, "mlp": {"epochs": 20}}
            surrogate = instantiate(node, seed=0)
            rng = np.random.default_rng(0)
            X = rng.integers(0, 5, (30, 6)).astype(float)
            y = X @ np.array([3.0, -1.0, 2.0, 0.5, 0.0, 1.0])
            surrogate.fit(X, y)
            pred = surrogate.predict(X)
            # every predictor ranks its training data of a linear target nearly right
            assert stats.kendalltau(pred, y).statistic > 0.7, option
    else:
        parts = build_parts(cfg)  # instantiates space, dataset, metric, costs, search
        kind = cfg.space._target_.rsplit(".", 1)[1].removesuffix("Space")
        # NB201 6, DARTS 28, RLNAS MobileNet 21, OFA MobileNetV3 46 (NSGANetV2's encoding),
        # EDANAS / NACHOS 49 (45 backbone + 4 exit genes at a fixed resolution), NAG cells 102
        # (51 per cell at 10 vertices)
        n_vars = {
            "Darts": 28,
            "MobileNet": 21,
            "OFAMobileNetV3": 46,
            "EEMobileNetV3": 49,
            "NachosMobileNetV3": 49,
            "NAGCell": 102,
        }
        assert parts.space.n_var == n_vars.get(kind, 6)
        if group in ("metric", "search"):
            assert (
                type(getattr(parts, "strategy" if group == "search" else "metric")).__name__
                == (node._target_.rsplit(".", 1)[1])
            )


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_instantiates(compose_cfg, name: str) -> None:
    cfg = compose_cfg(f"experiment={name}")
    parts = build_parts(cfg)
    # the experiment's own choices are the ones instantiated (not the root defaults)
    assert type(parts.metric).__name__ == cfg.metric._target_.rsplit(".", 1)[1]
    assert type(parts.strategy).__name__ == cfg.search._target_.rsplit(".", 1)[1]
    assert parts.strategy.n_evals == cfg.search.n_evals


def test_paper_experiments_hold_paper_settings(compose_cfg) -> None:
    rl = compose_cfg("experiment=rlnas_nb201")
    assert rl.supernet.random_labels and rl.supernet.epochs == 250
    assert rl.metric._target_.endswith("AngleMetric")
    assert (rl.space.channels, rl.space.cells_per_stage, rl.space.image_size) == (16, 5, 32)
    assert (rl.search.population, rl.search.top_k, rl.search.generations) == (100, 30, 20)
    ge = compose_cfg("experiment=genas_nb201")
    assert not ge.supernet.random_labels
    assert list(ge.metric.stds) == [0.001, 0.003, 0.006]
    assert ge.metric.val_images == 25000 and ge.metric.recal_images == 850
    for name, target in (("genas_darts", "AngleFlatnessMetric"), ("rlnas_darts", "AngleMetric")):
        d = compose_cfg(f"experiment={name}")
        assert d.metric._target_.endswith(target)
        assert d.supernet.random_labels == (name == "rlnas_darts")
        assert (d.space.channels, d.space.layers, d.space.image_size) == (16, 8, 32)
        opt = d.supernet.optimizer
        assert (opt.weight_decay, opt.nesterov, d.supernet.grad_clip) == (3e-4, False, 5.0)
        s = d.search
        assert (s.population, s.top_k, s.n_mutation, s.n_crossover) == (50, 10, 25, 25)
        assert (s.mutation_prob, s.generations, s.n_evals) == (0.1, 20, 1000)


def test_rlnas_mobilenet_holds_the_paper_setting(compose_cfg) -> None:
    cfg = compose_cfg("experiment=rlnas_mobilenet", "dataset.root=/data/imagenet")
    parts = build_parts(cfg)
    assert type(parts.space).__name__ == "MobileNetSpace" and parts.space.input_shape[1] == 224
    assert type(parts.data).__name__ == "ImageFolderData" and parts.data.num_classes == 1000
    assert parts.data.valid_fraction == 0.0  # RLNAS trains on every image (B.2)
    recipe = build("supernet", recipe_node(cfg))
    assert recipe.epochs == 120 and recipe.random_labels and recipe.label_smoothing == 0.1
    assert (recipe.grad_clip, recipe.grad_clip_algorithm) == (5.0, "value")
    conf = recipe.configure_optimizers([torch.nn.Parameter(torch.zeros(1))], steps_per_epoch=10)
    opt, sched = conf["optimizer"], conf["lr_scheduler"]
    assert opt.param_groups[0]["lr"] == 0.25 and opt.param_groups[0]["weight_decay"] == 4e-5
    assert sched["interval"] == "step"
    for _ in range(1200):  # 120 epochs of 10 steps: linear to 5e-4
        opt.step()
        sched["scheduler"].step()
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4)
    s = parts.strategy
    assert (s.population, s.top_k, s.n_crossover, s.generations) == (50, 10, 25, 20)
    assert s.crossover_first and s.legal_only and s.mutation_prob == 0.1
    assert [(c.name, c.upper) for c in parts.costs] == [("flops_lut", 475.0)]
    assert cfg.metric._target_.endswith("AngleMetric")


def test_flatnas_experiment_is_cnas_flatnas(compose_cfg) -> None:
    parts = build_parts(compose_cfg("experiment=flatnas_nb201"))
    ms = parts.strategy
    assert ms.surrogate.pool == ["rbf", "carts", "mlp"]  # CNAS HEAD's AS pool (§6.7)
    assert (ms.n_doe, ms.doe_extremes, ms.n_candidates) == (100, False, 8)  # §6.1
    assert (ms.pop_size, ms.generations) == (40, 20)
    assert parts.metric.finetune.epochs == 1 and parts.metric.finetune.optimizer == "asam"
    assert parts.metric.finetune.schedule == "cosine"
    assert [c.pmax for c in parts.costs] == [5.0]


def test_default_is_the_main_job(compose_cfg) -> None:
    cfg = compose_cfg()
    assert cfg.search._target_.endswith("NSGASearch")
    assert cfg.metric._target_.endswith("FlatnessMetric")
    assert [c._target_.rsplit(".", 1)[1] for c in cfg.objective.costs] == ["FlopsObjective"]
    assert cfg.dataset._target_.endswith("DigitsData")
    assert list(cfg.stages) == ["supernet", "search", "select"]


def test_nas_dataset_node_composes_and_changes_no_archive(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg()
    assert dict(cfg.nas_dataset) == {
        "source": "metric",
        "size": 1000,
        "path": None,
        "seed": None,
        "column": "cifar10valid_valid_acc_12ep",
    }
    for source in ("metric", "table", "archive", "scores"):
        node = compose_cfg(f"nas_dataset.source={source}", f"nas_dataset.path={tmp_path}")
        check_config(node)
        # the stage's settings are not part of the run directory's identity
        assert fingerprint(node) == fingerprint(cfg)


def test_conf_tree_has_no_stray_files() -> None:
    stray = [p for p in CONF.rglob("*") if p.is_file() and p.suffix != ".yaml"]
    assert stray == [], stray
    assert all(Path(CONF / g).is_dir() for g in GROUPS)


EXAMPLE_CONF = CONF.parent / "examples" / "extending" / "conf"
EXAMPLES = [(p.parent.name, p.stem) for p in sorted(EXAMPLE_CONF.glob("*/*.yaml"))]


@pytest.mark.parametrize(("group", "option"), EXAMPLES, ids=[f"{g}={o}" for g, o in EXAMPLES])
def test_example_option_composes_and_instantiates(compose_cfg, group: str, option: str) -> None:
    cfg = compose_cfg(f"hydra.searchpath=[file://{EXAMPLE_CONF}]", f"{group}={option}")
    parts = build_parts(cfg)
    assert parts.space.n_var >= 1 and parts.data.num_classes >= 2
