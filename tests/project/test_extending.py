"""The README's "Extending nasx" examples: a user dataset, metric and search space."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from examples.extending.chain_space import ChainSpace
from examples.extending.loss_gradient_metric import LossGradientMetric
from examples.extending.shapes_data import ShapesData
from nasx import pipeline
from nasx.metric import MetricContext, TorchRunner
from nasx.supernet import build_supernet
from tests.conftest import ROOT

SEARCHPATH = f"hydra.searchpath=[file://{ROOT / 'examples' / 'extending' / 'conf'}]"


def test_user_parts_run_the_whole_pipeline(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(
        SEARCHPATH,
        "dataset=shapes",
        "metric=loss_gradient",
        "space=chain",
        "logger=none",
        "progress=false",
        "supernet.epochs=2",
        "search.n_evals=12",
        "search.pop_size=6",
    )
    pipeline.run(cfg, tmp_path)
    done = json.loads((tmp_path / "search" / "done.json").read_text())
    assert done["n_evals"] == 12 and done["n_failed"] == 0
    arch = done["best"]["arch"]
    assert all(part in ("skip", "conv1x1", "conv3x3", "conv5x5") for part in arch.split("-"))
    # a lower-is-better metric enters F unchanged
    assert done["best"]["F"][0] == done["best"]["metric"]["loss_gradient"]
    assert (tmp_path / "final" / "front_00" / "weights.pt").is_file()


def test_chain_space_extraction_matches_the_supernet() -> None:
    space = ChainSpace(num_classes=3, layers=4, channels=4, image_size=8)
    supernet = build_supernet(space).eval()
    rng = np.random.default_rng(0)
    for _ in range(5):
        arch = space.sample(rng)
        assert space.parse(space.to_str(arch)) == arch
        x = torch.randn(2, *space.input_shape)
        with torch.no_grad():
            assert torch.allclose(
                supernet.extract(arch).eval()(x), supernet(x, supernet.path_of(arch)), atol=1e-6
            )


def test_user_metric_reads_the_context() -> None:
    data = ShapesData(num_train=64, num_test=16)
    space = ChainSpace(num_classes=3, layers=3, channels=4, image_size=12)
    data.setup(12, 3)
    ctx = MetricContext(
        space=space, supernet=build_supernet(space), data=data, runner=TorchRunner()
    )
    arch = space.parse("conv3x3-skip-conv1x1")
    g = LossGradientMetric()
    a = g(arch, ctx, torch.Generator().manual_seed(1))
    b = g(arch, ctx, torch.Generator().manual_seed(1))
    assert a == b and a["loss_gradient"] > 0
    assert not g.higher_is_better
