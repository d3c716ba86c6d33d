"""RLNAS's MobileNet supernet: paths, extraction, angle vector, one training step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasx.search_space import MobileNetSpace
from nasx.supernet import build_supernet
from nasx.supernet.mobilenet import MobileNetSupernet

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL_ID = "2 0 -1 2 2 0 2 4 0 4 4 2 4 2 4 2 0 0 0 2 2"
FIXED = (0, 4, 8, 12, 16, 20)
# (inp, oup) of the 21 layers at width 1 (RLNAS backbone_info)
WIDTHS = [(24, 32)] + [(32, 32)] * 3 + [(32, 56)] + [(56, 56)] * 3 + [(56, 112)]
WIDTHS += [(112, 112)] * 3 + [(112, 128)] + [(128, 128)] * 3 + [(128, 256)] + [(256, 256)] * 3
WIDTHS += [(256, 432)]
KERNEL_EXPAND = [(3, 3), (3, 6), (5, 3), (5, 6), (7, 3), (7, 6)]


@pytest.fixture(scope="module")
def space() -> MobileNetSpace:
    return MobileNetSpace(num_classes=10, image_size=32, width_mult=0.25)


@pytest.fixture
def supernet(space: MobileNetSpace) -> MobileNetSupernet:
    torch.manual_seed(0)
    net = build_supernet(space)
    assert isinstance(net, MobileNetSupernet)
    return net


def test_sample_path_is_valid_and_deterministic(supernet: MobileNetSupernet) -> None:
    a = [supernet.sample_path(np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(4)
    paths = [supernet.sample_path(rng) for _ in range(400)]
    for i in range(21):
        ops = {p[i] for p in paths}
        assert ops == (set(range(6)) if i in FIXED else set(range(-1, 6)))
    # the reference's draw: options [0..5] (+ [-1] where skippable) indexed by integers(len)
    rng = np.random.default_rng(5)
    expected = []
    for i in range(21):
        opts = list(range(6)) + ([] if i in FIXED else [-1])
        expected.append(opts[int(rng.integers(len(opts)))])
    assert supernet.sample_path(np.random.default_rng(5)) == tuple(expected)


def test_path_of(space: MobileNetSpace, supernet: MobileNetSupernet) -> None:
    arch = space.parse(MODEL_ID)
    assert supernet.path_of(arch) == tuple(int(t) for t in MODEL_ID.split())


def test_extract_equals_path_output(space: MobileNetSpace, supernet: MobileNetSupernet) -> None:
    rng = np.random.default_rng(6)
    gen = torch.Generator().manual_seed(0)
    supernet.train()
    with torch.no_grad():  # non-trivial BN running statistics in many ops
        for _ in range(6):
            supernet(torch.randn(8, *space.input_shape, generator=gen), supernet.sample_path(rng))
    supernet.eval()
    x = torch.randn(4, *space.input_shape, generator=gen)
    archs = [space.parse(MODEL_ID), *space.extremes(), space.sample(rng)]
    for arch in archs:
        # the path's own BN statistics: train-mode passes through this path too
        supernet.train()
        with torch.no_grad():
            supernet(torch.randn(8, *space.input_shape, generator=gen), supernet.path_of(arch))
        supernet.eval()
        net = supernet.extract(arch).eval()
        assert net.ops == supernet.path_of(arch)
        with torch.no_grad():
            ref = supernet(x, supernet.path_of(arch))
            out = net(x)
        assert torch.allclose(out, ref, atol=1e-5), (space.to_str(arch), (out - ref).abs().max())
        # a copy: changing the extracted weights leaves the supernet alone
        with torch.no_grad():
            next(net.parameters()).add_(1.0)
        assert not torch.equal(next(net.parameters()), next(supernet.parameters()))


def test_path_weights_length(space: MobileNetSpace) -> None:
    def expected(width: float, classes: int) -> int:
        def c(n: int) -> int:
            return max(1, round(n * width))

        total = 3 * c(40) * 9 + c(40) * 9 + c(40) * c(24) + c(432) * c(1728) + c(1728) * classes
        for (inp, oup), op in zip(WIDTHS, (int(t) for t in MODEL_ID.split()), strict=True):
            inp, oup = c(inp), c(oup)
            if op == -1:
                total += inp * oup
            else:
                k, e = KERNEL_EXPAND[op]
                h = e * inp
                total += inp * h + 2 * h + k * k * h + 2 * h + h * oup
        return total

    paper = MobileNetSpace()
    big = build_supernet(paper)
    vec = big.path_weights(big.state_dict(), paper.parse(MODEL_ID))
    assert vec is not None
    assert vec.numel() == expected(1.0, 1000) == 5_246_536
    small = build_supernet(space)
    vec = small.path_weights(small.state_dict(), space.parse(MODEL_ID))
    assert vec is not None
    assert vec.numel() == expected(0.25, 10) == 262_438
    assert vec.dtype == torch.float32


def test_path_weights_read_only_the_arch(
    space: MobileNetSpace, supernet: MobileNetSupernet
) -> None:
    arch = space.parse(MODEL_ID)
    state = {k: v.clone() for k, v in supernet.state_dict().items()}
    base = supernet.path_weights(state, arch)
    # layer 1 runs op 0: its weights count, the other ops' do not, nor its last BN
    for key, changes in [
        ("features.1.ops.0.conv.3.weight", True),
        ("features.1.ops.0.conv.1.bias", True),
        ("stem.0.weight", True),
        ("classifier.weight", True),
        ("features.1.ops.0.conv.7.weight", False),
        ("features.1.ops.2.conv.3.weight", False),
        ("features.2.ops.0.conv.0.weight", False),  # layer 2 is a skip
        ("classifier.bias", False),
    ]:
        changed = dict(state)
        changed[key] = state[key] + 0.5
        assert torch.equal(supernet.path_weights(changed, arch), base) != changes, key
    # RLNAS's order: fixed segments, then per layer its MBConv weights or eye(out, in)
    skip = space.parse(" ".join("0" if i in FIXED else "-1" for i in range(21)))
    segs = [state[k] for k in ("stem.0.weight", "fixed_block.conv.0.weight")]
    segs += [state[k] for k in ("fixed_block.conv.3.weight", "head.0.weight", "classifier.weight")]
    for i, (inp, oup, _, _, _) in enumerate(space.layer_keys()):
        if i in FIXED:
            names = ("0.weight", "1.weight", "1.bias", "3.weight", "4.weight", "4.bias", "6.weight")
            segs += [state[f"features.{i}.ops.0.conv.{n}"] for n in names]
        else:
            segs.append(torch.eye(oup, inp))
    expect = torch.cat([s.reshape(-1) for s in segs])
    assert torch.equal(supernet.path_weights(state, skip), expect)


def test_sgd_step_touches_only_the_path(space: MobileNetSpace, supernet: MobileNetSupernet) -> None:
    supernet.train()
    path = supernet.path_of(space.parse(MODEL_ID))
    before = {k: v.detach().clone() for k, v in supernet.named_parameters()}
    opt = torch.optim.SGD(supernet.parameters(), lr=0.1)
    x = torch.randn(4, *space.input_shape)
    loss = torch.nn.functional.cross_entropy(supernet(x, path), torch.tensor([0, 1, 2, 3]))
    opt.zero_grad()
    loss.backward()
    opt.step()
    for name, p in supernet.named_parameters():
        parts = name.split(".")
        used = parts[0] != "features" or int(parts[3]) == path[int(parts[1])]
        assert (p.grad is not None) == used, name
        if not used:
            assert torch.equal(p.detach(), before[name]), name
    changed = [n for n, p in supernet.named_parameters() if not torch.equal(p, before[n])]
    assert "features.0.ops.2.conv.0.weight" in changed and "classifier.weight" in changed
