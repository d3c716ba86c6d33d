"""Contract tests that run over every space option (``conf/space/*.yaml``).

A new space gets them by being registered (`nasx.supernet.register_supernet`) and having a
config file: the first test fails for a registered space type without one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from nasx.errors import NasxError
from nasx.objective.profile import count_macs, count_params
from nasx.search_space.base import SearchSpace
from nasx.supernet import build_supernet
from nasx.supernet.base import registered_spaces
from tests.conftest import CONF

SPACES = sorted(p.stem for p in (CONF / "space").glob("*.yaml"))
# tiny networks: one torch thread (thread contention on shared cores made this module take
# minutes, about 19 s per OFA extraction, against seconds now)
pytestmark = pytest.mark.usefixtures("one_thread")


def make_space(option: str, num_classes: int = 5) -> SearchSpace:
    """The space of ``space=<option>`` (its own defaults list merged), as the pipeline builds it."""
    node = OmegaConf.load(CONF / "space" / f"{option}.yaml")
    # string entries are parent space files; ``override /metric...: x`` entries (the
    # early-exit spaces') select other groups' options and do not shape the space node
    for parent in [d for d in node.pop("defaults", []) if isinstance(d, str) and d != "_self_"]:
        node = OmegaConf.merge(OmegaConf.load(CONF / "space" / f"{parent}.yaml"), node)
        node.pop("defaults", None)
    return instantiate(node, num_classes=num_classes)


@pytest.fixture(scope="module", params=SPACES)
def space(request) -> SearchSpace:
    return make_space(request.param)


def test_every_registered_space_has_a_config() -> None:
    configured = {type(make_space(o)) for o in SPACES}
    for cls in registered_spaces():
        if cls.__module__.startswith("nasx."):
            assert cls in configured, f"{cls.__name__} has no conf/space/*.yaml"


def test_encoding_round_trips(space: SearchSpace) -> None:
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(20)] + space.extremes()
    for arch in archs:
        assert space.parse(space.to_str(arch)) == arch
        assert space.decode(arch.encode()) == arch
        assert np.all(arch.encode() >= space.lower) and np.all(arch.encode() <= space.upper)
    for name, text in space.named_architectures().items():
        assert space.parse(name) == space.parse(text)
    with pytest.raises(NasxError):
        space.parse("not an architecture")


def test_variation_stays_valid(space: SearchSpace) -> None:
    rng = np.random.default_rng(1)
    a, b = space.sample(rng), space.sample(rng)
    for child in [space.mutate(a, rng, 0.5), space.crossover(a, b, rng)]:
        assert space.decode(child.encode()) == child  # repair is idempotent: children are valid
        assert space.parse(space.to_str(child)) == child
    assert len({space.sample(rng) for _ in range(20)}) > 1


def test_costs_are_positive(space: SearchSpace) -> None:
    arch = space.sample(np.random.default_rng(2))
    net = space.build_network(arch)
    assert count_params(net) > 0
    assert count_macs(net, space.network_input_shape) > 0


def _settle_bn(supernet: torch.nn.Module, space: SearchSpace, rng: np.random.Generator) -> None:
    """A few train-mode passes, so BN running statistics are not the identity."""
    supernet.train()
    with torch.no_grad():
        for _ in range(3):
            supernet(torch.randn(4, *space.input_shape), supernet.sample_path(rng))
    supernet.eval()


def test_extraction_equals_the_supernet_path(space: SearchSpace) -> None:
    torch.manual_seed(0)
    supernet = build_supernet(space)
    rng = np.random.default_rng(3)
    _settle_bn(supernet, space, rng)
    x = torch.randn(2, *space.input_shape)
    for arch in [space.sample(rng), space.extremes()[-1]]:
        net = supernet.extract(arch).eval()
        with torch.no_grad():
            want = supernet(x, supernet.path_of(arch))
            assert torch.allclose(net(x), want, atol=1e-4, rtol=1e-4)
        with torch.no_grad():  # the copy does not alias the supernet
            before = {k: v.clone() for k, v in supernet.state_dict().items()}
            for p in net.parameters():
                p.add_(1.0)
            assert all(torch.equal(v, before[k]) for k, v in supernet.state_dict().items())


def test_training_paths_are_reproducible_and_run(space: SearchSpace) -> None:
    supernet = build_supernet(space)
    a = [supernet.sample_path(np.random.default_rng([0, s])) for s in range(5)]
    b = [supernet.sample_path(np.random.default_rng([0, s])) for s in range(5)]
    assert a == b
    out = supernet.train()(torch.randn(2, *space.input_shape), a[0])
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.sum().backward()
    assert any(p.grad is not None for p in supernet.parameters())


def test_angle_vector_where_defined(space: SearchSpace) -> None:
    supernet = build_supernet(space)
    arch = space.extremes()[-1]
    if not supernet.has_path_weights:
        with pytest.raises(NasxError):
            supernet.path_weights(supernet.state_dict(), arch)
        return
    init = {k: v.clone() for k, v in supernet.state_dict().items()}
    moved = {
        k: v + 0.1 * torch.randn_like(v) if v.is_floating_point() else v for k, v in init.items()
    }
    v0, v1 = supernet.path_weights(init, arch), supernet.path_weights(moved, arch)
    assert v0 is not None and v1 is not None and v0.shape == v1.shape
    assert torch.isfinite(v0).all()
    cos = float(torch.nn.functional.cosine_similarity(v0.double(), v1.double(), dim=0))
    assert 0.0 < math.acos(max(-1.0, min(1.0, cos))) < math.pi
