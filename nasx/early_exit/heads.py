"""NACHOS's intermediate exit classifier and the EarlyExits cost counter that prices exits.

The head (reference ``seed-nsganetv2-cnas.md`` §6.3, "Exit classifiers"; EarlyExits
``utils_ee.py`` ``get_intermediate_classifiers_adaptive``) is::

    [MaxPool(k, stride k)] -> ReLU -> Conv3x3(C->32) -> ReLU -> Conv3x3(32->64) -> ReLU
        -> Conv3x3(64->128) -> ReLU -> Flatten -> ReLU -> Linear(-> n_classes (+1 if binary))

All three convolutions have stride 1 and padding 1. The reference text names the padding of the
first one only; the source it summarises passes ``padding=1`` to all three, and an unpadded
second and third conv could not run at all on the 2x2 maps that a 32 px input has after stages
3 and 4. So the head keeps its input's spatial size (after the pool), and its Linear's
``in_features`` are ``128 * H' * W'``.

`head_cost` is the counter the reference prices exits with (EarlyExits ``models/costs.py``), kept
by hand on purpose: it *is* the cost definition of ``avg_macs`` (a conv costs ``k_h k_w C_in
C_out (H/stride)(W/stride)`` on its *input* size, a max or average pool ``C H W``, a linear
``in * out``, everything else nothing), and ``torch.utils.flop_counter``, nasx's maintained MAC
counter, does not count pools at all. On the heads' convolutions (stride 1, "same" padding) and
linears the two counters agree, which the tests check; the pools are the difference, reported as
`HeadCost.pool_macs`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from ofa.utils import MyGlobalAvgPool2d
from torch import nn

#: output channels of the head's three convolutions (NACHOS's ``filters``)
FILTERS = (32, 64, 128)

#: modules the counter prices as pools: ``C * H * W`` of their input
_POOLS: tuple[type[nn.Module], ...] = (
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    MyGlobalAvgPool2d,  # OFA's global average pool in the final exit (``x.mean``)
)


def max_pool_kernel(channels: int) -> int:
    """The largest max-pool kernel NACHOS tries for an exit on ``channels`` channels."""
    if channels >= 16:
        return 4
    if channels >= 8:
        return 2
    return 1


def build_exit_head(
    in_channels: int,
    num_classes: int,
    binary: bool,
    pool: int | None,
    in_size: tuple[int, int],
) -> nn.Sequential:
    """One intermediate exit (see the module docstring) for ``in_channels x *in_size`` maps.

    Args:
        in_channels: channels of the feature map the exit reads.
        num_classes: class logits it outputs.
        binary: one more output unit, NACHOS's confidence (its sigmoid).
        pool: kernel (and stride) of the max pool prepended; ``None`` for no pool (1 is a
            pool too, as NACHOS tries it: it changes nothing but costs ``C H W``).
        in_size: ``(H, W)`` of the feature map, which fixes the Linear's ``in_features``.
    """
    h, w = in_size
    layers: list[nn.Module] = []
    if pool is not None:
        if not 1 <= pool <= min(h, w):
            raise ValueError(f"a {pool}x{pool} max pool does not fit a {h}x{w} feature map")
        layers.append(nn.MaxPool2d(pool, stride=pool))
        h, w = h // pool, w // pool
    channels = in_channels
    for out in FILTERS:
        layers += [nn.ReLU(), nn.Conv2d(channels, out, kernel_size=3, stride=1, padding=1)]
        channels = out
    layers += [
        nn.ReLU(),
        nn.Flatten(),
        nn.ReLU(),
        nn.Linear(channels * h * w, num_classes + int(binary)),
    ]
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class HeadCost:
    """One head's cost per sample by the reference's counter, in millions of MACs."""

    macs: float  # everything the counter prices
    pool_macs: float  # the pools' share, which torch.utils.flop_counter does not see


def _price(module: nn.Module, shape: torch.Size) -> float:
    """The reference's cost of one leaf module on an input of ``shape`` (batch first)."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        sh, sw = module.stride
        channels = module.in_channels * module.out_channels
        return kh * kw * channels * (shape[2] / sh) * (shape[3] / sw)
    if isinstance(module, nn.Linear):
        return float(module.in_features * module.out_features)
    if isinstance(module, _POOLS):
        return float(shape[1] * shape[2] * shape[3])
    return 0.0


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """``module`` in eval mode inside, every submodule's own mode restored afterwards."""
    modes = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        yield
    finally:
        for m, training in modes:
            m.training = training


def head_cost(head: nn.Module, in_shape: tuple[int, ...]) -> HeadCost:
    """``head``'s cost on one ``in_shape`` (``(C, H, W)``) input by the reference's counter.

    Every leaf module is priced on the input it actually receives in one eval-mode forward of a
    zero input (a module called twice counts twice). The reference counter only walks
    ``nn.Sequential`` children, so it prices OFA's wrapped final head (``ConvLayer``,
    ``LinearLayer``) at 0; pricing the leaves counts that head's convolutions, pool and linear.
    """
    total = pools = 0.0

    def hook(module: nn.Module, inputs: tuple[Any, ...], _output: Any) -> None:
        nonlocal total, pools
        cost = _price(module, inputs[0].shape)
        total += cost
        if isinstance(module, _POOLS):
            pools += cost

    handles = [m.register_forward_hook(hook) for m in head.modules() if not list(m.children())]
    param = next(head.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    try:
        with eval_mode(head), torch.no_grad():
            head(torch.zeros(1, *in_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return HeadCost(total / 1e6, pools / 1e6)
