"""EDANAS's and NACHOS's early-exit spaces: exit genes, subnet strings, exit positions."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from ofa.imagenet_classification.networks import MobileNetV3

from nasx.errors import NasxError
from nasx.search_space import (
    EEMobileNetV3Space,
    ExitConfig,
    NachosMobileNetV3Space,
    OFAMobileNetV3Space,
    exit_blocks,
)
from nasx.search_space.base import Architecture
from nasx.search_space.early_exit import THRESHOLDS
from nasx.supernet import build_supernet
from tests.search_space.test_contract import make_space

pytestmark = pytest.mark.usefixtures("one_thread")

SPACES = (EEMobileNetV3Space, NachosMobileNetV3Space)
#: a backbone with d = [2, 3, 4, 3, 2]: stage ends at blocks 2, 5, 9, 12, 14
D = [2, 3, 4, 3, 2]
BACKBONE = {"ks": [3, 5, 7] * 4 + [3, 5], "e": [6, 4, 3] * 4 + [6, 4], "d": D}


def small(cls: type, res: tuple[int, int, int] = (32, 32, 1)) -> OFAMobileNetV3Space:
    space: OFAMobileNetV3Space = cls(num_classes=10, width_mult=0.35, resolutions=res)
    return space


def cnas_decode_thresholds(x: np.ndarray) -> list[float]:
    """NasSearchSpace's ``decode`` of EDANAS's thresholds (``x[-num_blocks:-1]``), restated."""
    return [THRESHOLDS[i] for i in x.astype(int)[-5:-1]]


@pytest.mark.parametrize("cls", SPACES)
def test_gene_layout(cls: type) -> None:
    fixed, ranged = small(cls), small(cls, (32, 48, 8))
    top = 2 if cls is EEMobileNetV3Space else 1
    assert fixed.n_var == 49 and not fixed.has_resolution_gene
    assert list(fixed.upper) == [2] * 45 + [top] * 4 and not fixed.lower.any()
    assert ranged.n_var == 50 and list(ranged.upper) == [2] * 45 + [top] * 4 + [2]
    assert fixed.input_shape == (3, 32, 32)


def test_threshold_genes_sit_after_the_backbone_with_or_without_resolution() -> None:
    rng = np.random.default_rng(0)
    backbone = rng.integers(0, 3, 45)
    t = np.array([0, 2, 1, 2])  # 0.1, none, 0.2, none
    for res, tail in (((32, 48, 8), [1]), ((32, 32, 1), [])):
        space = small(EEMobileNetV3Space, res)
        x = np.concatenate([backbone, t, tail])
        cfg = space.exit_config(space.decode(x))
        assert cfg.stages == (1, 3) and cfg.thresholds == (0.1, 0.2)
        assert json.loads(space.to_str(space.decode(x)))["t"] == [0.1, 1, 0.2, 1]
        quirk = cnas_decode_thresholds(x)
        if tail:  # the reference's x[-5:-1] is right with a resolution gene last ...
            assert quirk == [0.1, 1.0, 0.2, 1.0]
        else:  # ... and one gene early at a fixed resolution; nasx is not
            assert quirk == [THRESHOLDS[backbone[-1]], 0.1, 1.0, 0.2]


def test_nachos_sampling_never_has_no_exit() -> None:
    space = small(NachosMobileNetV3Space)
    rng = np.random.default_rng(0)
    patterns = Counter(space.exit_genes(space.sample(rng)) for _ in range(1500))
    assert (0, 0, 0, 0) not in patterns and len(patterns) == 15
    assert min(patterns.values()) > 1500 / 15 / 2  # rejection: every valid pattern alike


def test_nachos_repair() -> None:
    space = small(NachosMobileNetV3Space)
    x = np.array(space.upper)
    x[45:49] = 0
    # decode (no generator): the exit after stage 4, a pure function of the genes
    assert space.exit_genes(space.decode(x)) == (0, 0, 0, 1)
    assert space.decode(x) == space.decode(x.copy())
    # with a generator: one exit, drawn
    rng = np.random.default_rng(0)
    arch = Architecture(tuple(int(v) for v in x))
    drawn = Counter(space.exit_genes(space._repair(arch, rng)) for _ in range(200))
    assert set(drawn) == {tuple(int(i == j) for i in range(4)) for j in range(4)}
    # valid vectors are kept; variation never leaves the space
    ok = space.sample(rng)
    assert space._repair(ok, rng) == ok
    for _ in range(50):
        child = space.mutate(ok, rng, 1.0)
        assert any(space.exit_genes(child)) and space.decode(child.encode()) == child


def test_canonical_strings_round_trip(tmp_path) -> None:
    ee, nachos = small(EEMobileNetV3Space), small(NachosMobileNetV3Space, (32, 48, 8))
    a = ee.from_subnet({**BACKBONE, "t": [0.1, 1, 0.2, 1]})
    assert ee.to_str(a) == json.dumps({**BACKBONE, "t": [0.1, 1, 0.2, 1]}, separators=(",", ":"))
    b = nachos.from_subnet({**BACKBONE, "b": [0, 1, 1, 0], "r": 40})
    assert nachos.to_str(b).endswith('"d":[2,3,4,3,2],"b":[0,1,1,0],"r":40}')
    for space, arch in ((ee, a), (nachos, b)):
        text = space.to_str(arch)
        assert space.parse(text) == arch
        assert space.parse(str(space.full_subnet(arch))) == arch  # a Python dict repr
        assert space.parse(" ".join(map(str, arch.genes))) == arch  # the gene vector
        files = space.reference_files(arch)
        assert files["net.subnet"] == json.loads(text)  # CNAS's config, exits included
        (tmp_path / "net.subnet").write_text(json.dumps(files["net.subnet"]))
        assert space.parse(str(tmp_path)) == arch
        # the backbone subnet is the OFA space's, exits left out
        ofa = OFAMobileNetV3Space(resolutions=space.resolutions)
        assert ofa.subnet(ofa.from_subnet(space.subnet(arch))) == space.subnet(arch)
    assert ee.parse(ee.to_str(a).replace('"t":[0.1,1,', '"t":[0.1,1.0,')) == a


def test_plain_ofa_subnets_and_invalid_exits() -> None:
    ee, nachos = small(EEMobileNetV3Space), small(NachosMobileNetV3Space)
    plain = ee.parse(json.dumps(BACKBONE))  # EDANAS: the backbone without early exits
    assert ee.exit_config(plain) == ExitConfig(stages=(), thresholds=(), depths=tuple(D))
    with pytest.raises(NasxError, match='needs "b"'):
        nachos.parse(json.dumps(BACKBONE))
    with pytest.raises(NasxError, match="at least one 1"):
        nachos.parse(json.dumps({**BACKBONE, "b": [0, 0, 0, 0]}))
    bad = [
        (ee, {**BACKBONE, "t": [0.1, 0.3, 1, 1]}),
        (ee, {**BACKBONE, "t": [0.1, 1, 1]}),
        (ee, {**BACKBONE, "t": "0.1"}),
        (ee, {**BACKBONE, "b": [1, 0, 0, 0]}),  # the other space's key
        (nachos, {**BACKBONE, "b": [2, 0, 0, 0]}),
        (nachos, {**BACKBONE, "b": [True, 0, 0, 0]}),
    ]
    for space, subnet in bad:
        with pytest.raises(NasxError, match="subnet"):
            space.from_subnet(subnet)


def test_exit_config_and_blocks() -> None:
    ee, nachos = small(EEMobileNetV3Space), small(NachosMobileNetV3Space)
    cfg = ee.exit_config(ee.from_subnet({**BACKBONE, "t": [0.1, 1, 0.2, 1]}))
    assert cfg == ExitConfig(stages=(1, 3), thresholds=(0.1, 0.2), depths=(2, 3, 4, 3, 2))
    assert cfg.blocks == exit_blocks(D, [1, 3]) == [2, 9, 14]
    cfg = nachos.exit_config(nachos.from_subnet({**BACKBONE, "b": [0, 1, 1, 1]}))
    assert cfg == ExitConfig(stages=(2, 3, 4), thresholds=None, depths=tuple(D))
    assert cfg.blocks == [5, 9, 12, 14]
    assert exit_blocks(D, []) == [14]
    for stages in ([0], [5], [2, 2]):
        with pytest.raises(ValueError, match="exit stages"):
            exit_blocks(D, stages)


@pytest.mark.parametrize("cls", SPACES)
def test_supernet_extracts_the_backbone(cls: type) -> None:
    space = small(cls)
    exits = {"t": [0.1, 1, 0.2, 1]} if cls is EEMobileNetV3Space else {"b": [1, 0, 1, 0]}
    arch = space.from_subnet({**BACKBONE, **exits})
    supernet = build_supernet(space)  # OFA's supernet, registered for the parent class
    assert supernet.path_of(arch) == BACKBONE
    net = supernet.extract(arch)
    assert isinstance(net, MobileNetV3) and len(net.blocks) == 1 + sum(D)
    assert isinstance(space.build_network(arch), MobileNetV3)
    assert max(space.exit_config(arch).blocks) == len(net.blocks) - 1


@pytest.mark.parametrize("cls", SPACES)
def test_extremes(cls: type) -> None:
    space = small(cls)
    lo, hi = space.extremes()
    assert space.subnet(lo)["d"] == [2] * 5 and space.subnet(hi)["d"] == [4] * 5
    assert space.exit_config(lo).stages == (1, 2, 3, 4)
    if cls is EEMobileNetV3Space:
        assert space.exit_config(lo).thresholds == (0.1,) * 4
        assert space.exit_config(hi).stages == ()
    else:
        assert space.exit_config(hi).stages == (4,)


@pytest.mark.parametrize(
    ("option", "cls", "width"),
    [
        ("ee_mbv3", EEMobileNetV3Space, 1.0),
        ("ee_mbv3_cpu", EEMobileNetV3Space, 0.35),
        ("nachos_mbv3", NachosMobileNetV3Space, 1.0),
        ("nachos_mbv3_cpu", NachosMobileNetV3Space, 0.35),
    ],
)
def test_configs(option: str, cls: type, width: float) -> None:
    space = make_space(option)
    assert type(space) is cls and space.width_mult == width
    assert space.n_var == 49 and space.resolutions == (32, 32, 1)
    assert space.describe()["space"] == option.removesuffix("_cpu")
