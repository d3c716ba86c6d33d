"""The OFA MobileNetV3 supernet: paths, extraction, training, OFA's official key layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

from nasx.search_space import OFAMobileNetV3Space
from nasx.search_space.ofa_mbv3 import pad_layers
from nasx.supernet import build_supernet, load_supernet
from nasx.supernet.ofa_mbv3 import OFAMobileNetV3Supernet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def space() -> OFAMobileNetV3Space:
    return OFAMobileNetV3Space(num_classes=10, width_mult=0.35, resolutions=(32, 48, 8))


@pytest.fixture
def supernet(space: OFAMobileNetV3Space) -> OFAMobileNetV3Supernet:
    torch.manual_seed(0)
    net = build_supernet(space)
    assert isinstance(net, OFAMobileNetV3Supernet)
    return net


def _valid(path: dict, ks=(3, 5, 7), e=(3, 4, 6), d=(2, 3, 4), r=(32, 40, 48)) -> bool:
    n = sum(path["d"])
    return (
        len(path["d"]) == 5
        and len(path["ks"]) == len(path["e"]) == n
        and set(path["d"]) <= set(d)
        and set(path["ks"]) <= set(ks)
        and set(path["e"]) <= set(e)
        and path["r"] in r
    )


def test_sample_path_is_valid_and_deterministic(supernet: OFAMobileNetV3Supernet) -> None:
    a = supernet.sample_path(np.random.default_rng(3))
    assert a == supernet.sample_path(np.random.default_rng(3))
    rng = np.random.default_rng(4)
    paths = [supernet.sample_path(rng) for _ in range(300)]
    assert all(_valid(p) for p in paths)
    for key, values in (("ks", {3, 5, 7}), ("e", {3, 4, 6}), ("d", {2, 3, 4})):
        assert set().union(*(p[key] for p in paths)) == values
    assert {p["r"] for p in paths} == {32, 40, 48}
    assert all(type(v) is int for p in paths[:5] for k in ["ks", "e", "d"] for v in p[k])
    # the reference's order: 5 depths, then sum(d) kernels, sum(d) expands, then r
    rng = np.random.default_rng(5)
    d = [[2, 3, 4][i] for i in rng.integers(3, size=5)]
    ks = [[3, 5, 7][i] for i in rng.integers(3, size=sum(d))]
    e = [[3, 4, 6][i] for i in rng.integers(3, size=sum(d))]
    r = [32, 40, 48][int(rng.integers(3))]
    assert supernet.sample_path(np.random.default_rng(5)) == {"ks": ks, "e": e, "d": d, "r": r}


def test_restricted_choices(supernet: OFAMobileNetV3Supernet) -> None:
    rng = np.random.default_rng(6)
    for _ in range(50):
        p = supernet.sample_path(rng, ks=[3, 5], e=[6], d=[2, 4], r=[40])
        assert _valid(p, ks=(3, 5), e=(6,), d=(2, 4), r=(40,))
    with pytest.raises(ValueError, match="subset"):
        supernet.sample_path(rng, ks=[9])
    with pytest.raises(ValueError, match="subset"):
        supernet.sample_path(rng, r=[64])


def test_fixed_resolution_paths_have_no_r() -> None:
    space = OFAMobileNetV3Space(num_classes=10, width_mult=0.35, resolutions=(32, 32, 4))
    net = build_supernet(space)
    assert "r" not in net.sample_path(np.random.default_rng(0))
    assert "r" not in net.largest_path() and "r" not in net.smallest_path()


def test_largest_and_smallest(space: OFAMobileNetV3Space, supernet: OFAMobileNetV3Supernet) -> None:
    small, large = space.extremes()
    assert supernet.smallest_path() == supernet.path_of(small) == space.subnet(small)
    assert supernet.largest_path() == supernet.path_of(large)
    assert supernet.largest_path()["r"] == 48 and supernet.smallest_path()["r"] == 32


def test_forward_runs_each_resolution(supernet: OFAMobileNetV3Supernet) -> None:
    for r in (32, 40, 48):
        path = supernet.sample_path(np.random.default_rng(r), r=[r])
        out = supernet(torch.randn(2, 3, r, r), path)
        assert out.shape == (2, 10) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="sum"):
        supernet(torch.randn(1, 3, 32, 32), {"ks": [3], "e": [3], "d": [2] * 5})


def test_extract_equals_path_output(
    space: OFAMobileNetV3Space, supernet: OFAMobileNetV3Supernet
) -> None:
    rng = np.random.default_rng(7)
    gen = torch.Generator().manual_seed(0)
    supernet.train()
    with torch.no_grad():  # non-trivial BN running statistics
        for _ in range(4):
            path = supernet.sample_path(rng)
            supernet(torch.randn(8, 3, path["r"], path["r"], generator=gen), path)
    supernet.eval()
    for arch in [*space.extremes(), space.sample(rng), space.sample(rng)]:
        shape = space.input_shape_of(arch)
        x = torch.randn(4, *shape, generator=gen)
        net = supernet.extract(arch)
        assert net.training
        net.eval()
        with torch.no_grad():
            ref = supernet(x, supernet.path_of(arch))
            out = net(x)
        assert torch.allclose(out, ref, atol=1e-5), (out - ref).abs().max()
        # NSGANetV2's net.inherited: the extracted weights fit the space's own network
        fresh = space.build_network(arch)
        # (nn.Module's strict load: OFA's MobileNetV3.load_state_dict ignores ``strict``)
        torch.nn.Module.load_state_dict(fresh, net.state_dict(), strict=True)
        assert net.config == fresh.config
        with torch.no_grad():  # a copy: the supernet is untouched
            before = {k: v.clone() for k, v in supernet.state_dict().items()}
            for p in net.parameters():
                p.add_(1.0)
        assert all(torch.equal(v, before[k]) for k, v in supernet.state_dict().items())


def test_one_sgd_step(space: OFAMobileNetV3Space, supernet: OFAMobileNetV3Supernet) -> None:
    path = supernet.sample_path(np.random.default_rng(8), d=[2, 3])
    opt = torch.optim.SGD(supernet.parameters(), lr=0.1, momentum=0.9)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    x, y = torch.randn(8, 3, path["r"], path["r"]), torch.randint(0, 10, (8,))
    supernet.train()
    loss = torch.nn.functional.cross_entropy(supernet(x, path), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    after = supernet.state_dict()
    assert not torch.equal(after["first_conv.conv.weight"], before["first_conv.conv.weight"])
    # the last layer of stage 4 is beyond the sampled depth: no gradient, not moved
    key = "blocks.16.conv.point_linear.conv.conv.weight"
    assert torch.equal(after[key], before[key])


def _plain_ofa(width: float) -> OFAMobileNetV3:
    return OFAMobileNetV3(
        n_classes=1000,
        dropout_rate=0,
        width_mult=width,
        ks_list=[3, 5, 7],
        expand_ratio_list=[3, 4, 6],
        depth_list=[2, 3, 4],
    )


@pytest.mark.parametrize("width", [1.0, 1.2])
def test_official_key_layout_loads(width: float, tmp_path) -> None:
    torch.manual_seed(1)
    plain = _plain_ofa(width).train()
    with torch.no_grad():  # non-trivial BN statistics in the reference network
        for k, e, d in ((7, 6, 4), (3, 4, 2), (5, 3, 3)):
            plain.set_active_subnet(ks=k, e=e, d=d)
            plain(torch.randn(4, 3, 64, 64))
    state = plain.state_dict()
    assert {
        "first_conv.conv.weight",
        "blocks.0.conv.depth_conv.conv.weight",
        "blocks.1.conv.depth_conv.conv.conv.weight",
        "blocks.1.conv.depth_conv.conv.7to5_matrix",
    } <= set(state)
    space = OFAMobileNetV3Space(num_classes=1000, width_mult=width)
    torch.manual_seed(2)
    supernet = build_supernet(space)
    assert set(supernet.state_dict()) == set(state)
    supernet.load_state_dict(state, strict=True)
    # as users pass it: supernet.checkpoint=<OFA's {"state_dict": ...} file>
    torch.save({"state_dict": state}, tmp_path / "ofa_mbv3_d234_e346_k357_w.pth")
    loaded = load_supernet(space, tmp_path / "ofa_mbv3_d234_e346_k357_w.pth")
    plain.eval()
    x = torch.randn(2, 3, 64, 64)
    for net in (supernet.eval(), loaded):
        for path in (net.largest_path(), net.sample_path(np.random.default_rng(9))):
            plain.set_active_subnet(
                ks=pad_layers(path["ks"], path["d"]),
                e=pad_layers(path["e"], path["d"]),
                d=path["d"],
            )
            with torch.no_grad():
                assert torch.equal(net(x, path), plain(x))


def test_legacy_and_mismatched_keys(space: OFAMobileNetV3Space) -> None:
    torch.manual_seed(3)
    src = build_supernet(space)
    old = {
        k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
        for k, v in src.state_dict().items()
    }
    dst = build_supernet(space)
    dst.load_state_dict(old)  # OFA's older ".mobile_inverted_conv." checkpoints
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in dst.state_dict().items())
    partial = dict(list(src.state_dict().items())[:-3])
    with pytest.raises(RuntimeError, match="Missing key"):
        dst.load_state_dict(partial)
    assert dst.load_state_dict(partial, strict=False).missing_keys


def test_in_channels() -> None:
    space = OFAMobileNetV3Space(
        num_classes=10, width_mult=0.35, resolutions=(32, 48, 8), in_channels=1
    )
    supernet = build_supernet(space).eval()
    arch = space.sample(np.random.default_rng(10))
    x = torch.randn(2, *space.input_shape_of(arch))
    assert x.shape[1] == 1
    with torch.no_grad():
        assert torch.allclose(supernet.extract(arch).eval()(x), supernet(x, supernet.path_of(arch)))
    assert supernet.extract(arch).config == space.net_config(arch)
