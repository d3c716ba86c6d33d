"""NSGANetV2 and CNAS on the OFA MobileNetV3 space: the smoke presets, files, resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nasx import pipeline
from nasx.objective.profile import count_macs
from nasx.search_space import OFAMobileNetV3Space
from nasx.supernet import build_supernet


def _run(compose_cfg, tmp_path: Path, experiment: str) -> tuple[Path, list[dict]]:
    pipeline.run(compose_cfg(f"experiment={experiment}"), tmp_path)
    lines = (tmp_path / "search" / "evaluations.jsonl").read_text().splitlines()
    return tmp_path, [json.loads(line) for line in lines]


def _space() -> OFAMobileNetV3Space:
    return OFAMobileNetV3Space(num_classes=4, width_mult=0.35, resolutions=(32, 48, 8))


def test_msunas_smoke_writes_nsganetv2_files(compose_cfg, tmp_path: Path) -> None:
    run, recs = _run(compose_cfg, tmp_path, "msunas_ofa_smoke")
    assert len(recs) == 12 and not any(r["failed"] for r in recs)
    space = _space()
    # every cost is measured at the candidate's own resolution
    for r in recs:
        arch = space.parse(r["arch"])
        size = space.input_shape_of(arch)
        assert size[1] == json.loads(r["arch"])["r"]
        want = count_macs(space.build_network(arch), size)
        assert r["objectives"]["flops"] == pytest.approx(want)
    assert len({json.loads(r["arch"])["r"] for r in recs}) > 1
    iters = sorted((run / "search").glob("iter_*.json"))
    assert json.loads(iters[-1].read_text())["surrogate"]["name"] == "rbf"
    # post_search.py's files: the subnet, the OFA config, the inherited weights
    chosen = json.loads((run / "final" / "selection.json").read_text())["selected"][0]
    folder = run / "final" / chosen["name"]
    subnet = json.loads((folder / "net.subnet").read_text())
    assert set(subnet) == {"ks", "e", "d", "r"} and len(subnet["ks"]) == sum(subnet["d"])
    assert space.to_str(space.parse(str(folder / "net.subnet"))) == chosen["arch"]
    from ofa.imagenet_classification.networks import MobileNetV3

    net = MobileNetV3.build_from_config(json.loads((folder / "net.config").read_text()))
    state = torch.load(folder / "net.inherited", weights_only=True)["state_dict"]
    torch.nn.Module.load_state_dict(net, state, strict=True)  # rebuilt from net.config alone


def test_cnas_smoke_runs_every_stage(compose_cfg, tmp_path: Path) -> None:
    _, recs = _run(compose_cfg, tmp_path, "cnas_ofa_smoke")
    assert len(recs) == 12 and not any(r["failed"] for r in recs)
    assert all("tiny_ml" in r["objectives"] for r in recs)
    # the static exterior penalty puts every network over pmax ~1e10 above the others
    assert any(r["objectives"]["tiny_ml"] > 1e9 for r in recs)


def test_an_imagenet_head_is_truncated_to_the_dataset_classes() -> None:
    space = OFAMobileNetV3Space(
        num_classes=4, width_mult=0.35, resolutions=(32, 32, 1), supernet_classes=12
    )
    torch.manual_seed(0)
    supernet = build_supernet(space).eval()
    arch = space.extremes()[-1]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        full = supernet(x, supernet.path_of(arch))
        cut = supernet.extract(arch).eval()(x)
    assert full.shape == (2, 12) and cut.shape == (2, 4)
    assert torch.allclose(cut, full[:, :4], atol=1e-5)  # CNAS: the first n_classes rows
    with pytest.raises(ValueError, match="supernet_classes"):
        OFAMobileNetV3Space(num_classes=10, supernet_classes=5)


def test_reference_archive_files_load(tmp_path: Path) -> None:
    """An NSGANetV2/CNAS ``iter_<t>.stats`` archive and ``net_<i>.subnet`` files are read."""
    from nasx.correlate import choose_archs

    space = _space()
    subnets = [space.subnet(a) for a in space.extremes()]
    # written as NSGANetV2's msunas.py writes them (json.dump of the archive list)
    stats = tmp_path / "iter_3.stats"
    stats.write_text(
        json.dumps({"archive": [[s, 12.5, 40.0] for s in subnets], "hv": 0.4, "surrogate": {}})
    )
    got = choose_archs(str(stats), space, seed=0)
    assert [space.subnet(a) for a in got] == subnets
    net = tmp_path / "net_0.subnet"
    with net.open("w") as f:
        json.dump(subnets[1], f)
    assert space.parse(str(net)) == space.extremes()[1]


@pytest.mark.parametrize(
    "recipe",
    [
        ["supernet=sandwich", "supernet.epochs=1"],
        [
            "supernet=progressive_shrinking",
            "supernet.epochs=2",
            "supernet.phases=[{epochs:1},{epochs:1,ks:[3,5,7],dynamic_batch_size:2}]",
        ],
    ],
    ids=["sandwich", "progressive_shrinking"],
)
def test_elastic_recipes_train_the_ofa_supernet(compose_cfg, tmp_path: Path, recipe) -> None:
    cfg = compose_cfg("experiment=msunas_ofa_smoke", "stages=[supernet]", *recipe)
    pipeline.run(cfg, tmp_path)
    from nasx.io import load_state_dict

    init = load_state_dict(tmp_path / "supernet" / "init.ckpt")
    final = load_state_dict(tmp_path / "supernet" / "final.ckpt")
    assert init.keys() == final.keys()
    assert any(not torch.equal(init[k], final[k]) for k in init if k.endswith("weight"))
