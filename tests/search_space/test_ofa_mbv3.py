"""OFA MobileNetV3 space: NSGANetV2's encoding, subnet files, OFA's networks and their costs."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest
import torch
from ofa.imagenet_classification.networks import MobileNetV3
from ofa.utils.flops_counter import profile

from nasx.errors import NasxError
from nasx.objective.activations import count_activations
from nasx.objective.profile import count_macs, count_params
from nasx.search_space import OFAMobileNetV3Space
from nasx.search_space.base import Architecture

pytestmark = pytest.mark.usefixtures("one_thread")

KS, ES, DS = [3, 5, 7], [3, 4, 6], [2, 3, 4]


@pytest.fixture(scope="module")
def paper() -> OFAMobileNetV3Space:
    return OFAMobileNetV3Space(num_classes=1000)


@pytest.fixture(scope="module")
def fixed() -> OFAMobileNetV3Space:
    """CNAS's fixed-resolution form (lr == ur): 45 genes, no "r"."""
    return OFAMobileNetV3Space(num_classes=10, width_mult=0.35, resolutions=(40, 40, 4))


@pytest.fixture(scope="module")
def tiny() -> OFAMobileNetV3Space:
    return OFAMobileNetV3Space(num_classes=10, width_mult=0.35, resolutions=(32, 48, 8))


def nsg_encode(config: dict, resolutions: list[int] | None) -> list[int]:
    """NSGANetV2's ``OFASearchSpace.encode`` (reference §1), restated for the test."""
    x: list[int] = []
    start = 0
    for d in config["d"]:
        pad = [0] * (4 - d)
        x.append(DS.index(d))
        x += [KS.index(k) for k in config["ks"][start : start + d]] + pad
        x += [ES.index(e) for e in config["e"][start : start + d]] + pad
        start += d
    if resolutions is not None:
        x.append(resolutions.index(config["r"]))
    return x


def test_layout(paper: OFAMobileNetV3Space, fixed: OFAMobileNetV3Space) -> None:
    assert paper.n_var == 46 and paper.has_resolution_gene
    assert paper.resolution_choices == tuple(range(192, 257, 4))
    assert list(paper.upper) == [2] * 45 + [16] and not paper.lower.any()
    assert paper.input_shape == paper.network_input_shape == (3, 256, 256)
    assert fixed.n_var == 45 and not fixed.has_resolution_gene
    assert list(fixed.upper) == [2] * 45
    assert fixed.input_shape == (3, 40, 40)
    with pytest.raises(ValueError, match="multiple of step"):
        OFAMobileNetV3Space(resolutions=(192, 256, 5))
    with pytest.raises(ValueError, match="lr <= ur"):
        OFAMobileNetV3Space(resolutions=(256, 192, 4))


@pytest.mark.parametrize("form", ["paper", "fixed"])
def test_round_trips_and_nsganetv2_encoding(form: str, request: pytest.FixtureRequest) -> None:
    space: OFAMobileNetV3Space = request.getfixturevalue(form)
    res = list(space.resolution_choices) if space.has_resolution_gene else None
    rng = np.random.default_rng(0)
    for arch in [space.sample(rng) for _ in range(30)] + space.extremes():
        sub = space.subnet(arch)
        assert set(sub) == ({"ks", "e", "d", "r"} if res else {"ks", "e", "d"})
        assert len(sub["ks"]) == len(sub["e"]) == sum(sub["d"]) and len(sub["d"]) == 5
        assert list(arch.genes) == nsg_encode(sub, res)  # NSGANetV2's vector, gene for gene
        assert space.from_subnet(sub) == arch
        assert json.loads(space.to_str(arch)) == sub  # json.load reads the canonical string
        assert space.parse(space.to_str(arch)) == arch
        assert space.parse(json.dumps(sub, indent=2, sort_keys=True)) == arch
        assert space.parse(str(sub)) == arch  # Python's repr, as CNAS logs print configs
        assert space.parse(str(list(arch.genes))) == arch
        assert space.parse(" ".join(map(str, arch.genes))) == arch
        assert space.input_shape_of(arch) == (3, sub.get("r", 40), sub.get("r", 40))


def test_padded_genes_are_canonical(paper: OFAMobileNetV3Space) -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        x = rng.integers(paper.lower, paper.upper + 1)
        arch = paper.decode(x)
        for s in range(5):
            d = DS[arch.genes[9 * s]]
            assert arch.genes[9 * s + 1 + d : 9 * s + 5] == (0,) * (4 - d)
            assert arch.genes[9 * s + 5 + d : 9 * s + 9] == (0,) * (4 - d)
        # the unexpressed genes are ignored: NSGANetV2's decode of x is the same subnet
        assert paper.parse(" ".join(map(str, x))) == arch
        assert paper.decode(arch.encode()) == arch
    a, b = np.zeros(46, dtype=int), np.zeros(46, dtype=int)
    b[3], b[8] = 2, 1  # layers 3 and 4 of stage 1 (depth 2): not expressed
    assert paper.decode(a) == paper.decode(b) == paper.extremes()[0]


def test_extremes(paper: OFAMobileNetV3Space, fixed: OFAMobileNetV3Space) -> None:
    small, large = (paper.subnet(a) for a in paper.extremes())
    assert small == {"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 192}
    assert large == {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 256}
    assert fixed.subnet(fixed.extremes()[1]) == {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5}


def test_subnet_files_as_nsganetv2_writes_them(paper: OFAMobileNetV3Space, tmp_path) -> None:
    config = {"ks": [3, 5, 7, 5, 3, 7, 7, 5, 3, 3, 5, 7], "e": [3, 4, 6] * 4}
    config |= {"d": [2, 3, 2, 2, 3], "r": 224}
    path = tmp_path / "iter_1" / "net_0.subnet"
    path.parent.mkdir()
    with open(path, "w") as f:  # NSGANetV2's prepare_eval_folder
        json.dump(config, f)
    arch = paper.parse(str(path))
    assert paper.subnet(arch) == config
    assert paper.parse(str(path.parent / ".." / "iter_1" / "net_0.subnet")) == arch
    folder = tmp_path / "net-flops@300"  # post_search's folder holds net.subnet
    folder.mkdir()
    (folder / "net.subnet").write_text(json.dumps(config))
    assert paper.parse(str(folder)) == arch
    with pytest.raises(NasxError, match="does not exist"):
        paper.parse(str(tmp_path / "net_9.subnet"))
    with pytest.raises(NasxError, match="does not exist"):
        paper.parse("net_9.subnet")
    stats = tmp_path / "net_0.stats"
    stats.write_text(json.dumps({"top1": 71.2, "flops": 300.1}))
    with pytest.raises(NasxError, match="expected an OFA MobileNetV3 subnet"):
        paper.parse(str(stats))


def test_cnas_fixed_resolution_files(fixed: OFAMobileNetV3Space, tmp_path) -> None:
    config = {"ks": [3] * 10, "e": [6] * 10, "d": [2] * 5}  # CNAS with lr == ur: no "r"
    path = tmp_path / "net_3.subnet"
    path.write_text(json.dumps(config))
    arch = fixed.parse(str(path))
    assert fixed.subnet(arch) == config and arch.genes.count(0) == 45 - 10
    assert fixed.from_subnet({**config, "r": 40}) == arch  # the fixed resolution is accepted
    with pytest.raises(NasxError, match="r=32"):
        fixed.from_subnet({**config, "r": 32})


@pytest.mark.parametrize(
    ("subnet", "message"),
    [
        ({"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5}, "missing"),
        ({"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 224, "t": [1]}, "unknown keys"),
        ({"ks": [3] * 9, "e": [3] * 10, "d": [2] * 5, "r": 224}, "ks="),
        ({"ks": [4] * 10, "e": [3] * 10, "d": [2] * 5, "r": 224}, "ks="),
        ({"ks": [3] * 10, "e": [5] * 10, "d": [2] * 5, "r": 224}, "e="),
        ({"ks": [3] * 10, "e": [3] * 10, "d": [2] * 4 + [1], "r": 224}, "d="),
        ({"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 225}, "r=225"),
        ({"ks": "3", "e": [3] * 10, "d": [2] * 5, "r": 224}, "list of integers"),
        ([3, 3], "expected an OFA MobileNetV3 subnet"),
    ],
)
def test_invalid_subnets_name_the_form(
    paper: OFAMobileNetV3Space, subnet: object, message: str
) -> None:
    with pytest.raises(NasxError, match=message):
        paper.from_subnet(subnet)  # type: ignore[arg-type]


def test_invalid_texts(paper: OFAMobileNetV3Space, fixed: OFAMobileNetV3Space) -> None:
    with pytest.raises(NasxError, match="45 genes, but this space has 46"):
        paper.parse(" ".join(["0"] * 45))
    with pytest.raises(NasxError, match="46 genes, but this space has 45"):
        fixed.parse(" ".join(["0"] * 46))
    with pytest.raises(NasxError, match="gene 45 is 17"):
        paper.parse(" ".join(["0"] * 45 + ["17"]))
    with pytest.raises(NasxError, match="cannot parse subnet"):
        paper.parse("{'ks': [3, ")
    with pytest.raises(NasxError, match="expected an OFA MobileNetV3 subnet"):
        paper.parse("MobileNetV3")


def _at(space: OFAMobileNetV3Space, k: int, e: int, d: int, r: int) -> Architecture:
    return space.from_subnet({"ks": [k] * 5 * d, "e": [e] * 5 * d, "d": [d] * 5, "r": r})


def _ofa_counts(net: torch.nn.Module, r: int) -> tuple[int, float, float]:
    """OFA's counter: exact per-layer sum, and its own (float32-accumulated) totals."""
    ops, params = profile(net, (1, 3, r, r))
    exact = sum(int(m.total_ops.item()) for m in net.modules() if not list(m.children()))
    return exact, ops, params


# (width, smallest params M, smallest MACs M, largest params M, largest MACs M) at 224 px
ANCHORS = [(1.0, 3.41, 121.3, 7.67, 566.2), (1.2, 4.60, 193.1, 10.70, 843.1)]


@pytest.mark.parametrize(("width", "p_small", "m_small", "p_large", "m_large"), ANCHORS)
def test_costs_match_ofa_counter_and_anchors(
    width: float, p_small: float, m_small: float, p_large: float, m_large: float
) -> None:
    space = OFAMobileNetV3Space(num_classes=1000, width_mult=width)
    for (k, e, d), p_ref, m_ref in (((3, 3, 2), p_small, m_small), ((7, 6, 4), p_large, m_large)):
        arch = _at(space, k, e, d, 224)
        assert space.input_shape_of(arch) == (3, 224, 224)
        net = space.build_network(arch)
        params, macs = count_params(net), count_macs(net, space.input_shape_of(arch))
        exact, ofa_ops, ofa_params = _ofa_counts(space.build_network(arch), 224)
        # the same terms (convs incl. SE, the classifier as in x out; no BN/activation/pool):
        # equal to the MAC; OFA's total differs only by its float32 accumulation
        assert round(macs * 1e6) == exact
        assert ofa_ops == pytest.approx(exact, rel=1e-7, abs=64)
        assert params * 1e6 == ofa_params
        assert round(macs, 1) == m_ref
        # 7.66476 M for the largest width-1.0 net: the anchor 7.67 is 7.665 rounded again
        assert params == pytest.approx(p_ref, abs=0.006)


def test_net_config_is_ofas_and_rebuilds(tiny: OFAMobileNetV3Space) -> None:
    rng = np.random.default_rng(2)
    for arch in [tiny.sample(rng), *tiny.extremes()]:
        config = tiny.net_config(arch)
        net = tiny.build_network(arch)
        assert config == net.config  # NSGANetV2 writes net.config = subnet.config
        assert set(config) == {
            "name",
            "bn",
            "first_conv",
            "blocks",
            "final_expand_layer",
            "feature_mix_layer",
            "classifier",
        }
        assert len(config["blocks"]) == 1 + sum(tiny.subnet(arch)["d"])
        rebuilt = MobileNetV3.build_from_config(json.loads(json.dumps(config)))
        shapes = {k: v.shape for k, v in net.state_dict().items()}
        assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
        kernels = [b["conv"]["kernel_size"] for b in config["blocks"][1:]]
        assert kernels == tiny.subnet(arch)["ks"]


def test_build_network_is_fresh_and_leaves_the_rng_alone(tiny: OFAMobileNetV3Space) -> None:
    space = copy.deepcopy(tiny)
    arch = space.extremes()[1]
    torch.manual_seed(0)
    first = space.build_network(arch).state_dict()  # builds the cached template too
    torch.manual_seed(0)
    second = space.build_network(arch).state_dict()
    assert all(torch.equal(first[k], v) for k, v in second.items())
    out = space.build_network(arch)(torch.randn(2, *space.input_shape_of(arch)))
    assert out.shape == (2, 10)
    clone = pickle.loads(pickle.dumps(space))  # the template is not pickled
    assert clone._template is None and clone.subnet(arch) == space.subnet(arch)


def test_in_channels(tiny: OFAMobileNetV3Space) -> None:
    space = OFAMobileNetV3Space(
        num_classes=10, width_mult=0.35, resolutions=(32, 48, 8), in_channels=1
    )
    arch = space.extremes()[0]
    assert space.input_shape_of(arch) == (1, 32, 32)
    assert space.build_network(arch)(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_activations_grow_with_resolution(paper: OFAMobileNetV3Space) -> None:
    counts = []
    for r in (192, 224, 256):
        arch = _at(paper, 5, 4, 3, r)
        counts.append(count_activations(paper.build_network(arch), paper.input_shape_of(arch)))
    assert 0 < counts[0] < counts[1] < counts[2]


def test_describe(paper: OFAMobileNetV3Space) -> None:
    info = paper.describe()
    assert info["space"] == "ofa_mbv3" and info["resolutions"] == [192, 256, 4]
    assert info["n_var"] == 46 and json.loads(json.dumps(info)) == info
