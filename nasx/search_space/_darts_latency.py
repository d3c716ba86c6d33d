"""Latency-LUT keys and layers of the stand-alone DARTS network (OFA/NSGANetV2 key format).

One key per timed layer of `nasx.search_space._darts_net.DartsNetwork` built with
``pool_bn=False`` (the deployed form): the stem (``stem`` for the CIFAR form, ``stem0`` and
``stem1`` for the ImageNet form), every cell's ``relu_conv_bn`` / ``factorized_reduce``
preprocessing, one ``<op>`` per non-``none`` edge (a stride-2 edge halves the key's output
size), ``gap`` and ``classifier``. The sums and the channel concatenation that join a cell are
not timed, as in OFA's LUT.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nasx.errors import NasxError
from nasx.search_space._darts_net import (
    EDGES,
    cell_half,
    cifar_stem,
    imagenet_stem0,
    imagenet_stem1,
    reduction_cells,
)
from nasx.search_space._darts_ops import OPS, FactorizedReduce, ReLUConvBN, build_op
from nasx.search_space.base import parse_latency_key


def _key(ltype: str, c_in: int, s_in: int, c_out: int, s_out: int) -> str:
    return f"{ltype}-input:{s_in}x{s_in}x{c_in}-output:{s_out}x{s_out}x{c_out}"


def latency_keys(
    genes: Sequence[int],
    stem: str,
    channels: int,
    layers: int,
    image_size: int,
    in_channels: int,
    num_classes: int,
) -> list[str]:
    """The keys of the network of ``genes``, in execution order (see the module docstring)."""
    c, keys = channels, []
    if stem == "cifar":
        keys.append(_key("stem", in_channels, image_size, 3 * c, image_size))
        c_pp = c_p = 3 * c
        s_pp = s_p = image_size
        reduction_prev = False
    else:
        s_pp, s_p = image_size // 4, image_size // 8
        keys.append(_key("stem0", in_channels, image_size, c, s_pp))
        keys.append(_key("stem1", c, s_pp, c, s_p))
        c_pp = c_p = c
        reduction_prev = True
    reductions = reduction_cells(layers)
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            c *= 2
        s_out = s_p // 2 if reduction else s_p
        if reduction_prev:
            keys.append(_key("factorized_reduce", c_pp, s_pp, c, s_p))
        else:
            keys.append(_key("relu_conv_bn", c_pp, s_pp, c, s_pp))
        keys.append(_key("relu_conv_bn", c_p, s_p, c, s_p))
        half = cell_half(genes, reduction)
        for e, (_, k) in enumerate(EDGES):
            if half[e] != 0:
                s_in = s_p if reduction and k < 2 else s_out
                keys.append(_key(OPS[half[e]], c, s_in, c, s_out))
        c_pp, c_p, s_pp, s_p = c_p, 4 * c, s_p, s_out
        reduction_prev = reduction
    keys.append(_key("gap", c_p, s_p, c_p, 1))
    keys.append(f"classifier-input:{c_p}-output:{num_classes}")
    return keys


def latency_layer(key: str) -> tuple[nn.Module, tuple[int, ...]]:
    """A freshly initialised module for ``key`` and the shape of its one-sample input."""
    ltype, c_in, c_out = parse_latency_key(key)
    module: nn.Module
    if ltype == "classifier":
        return nn.Linear(c_in[0], c_out[0]), (1, *c_in)
    if ltype == "stem":
        module = cifar_stem(c_in[0], c_out[0])
    elif ltype == "stem0":
        module = imagenet_stem0(c_in[0], c_out[0])
    elif ltype == "stem1":
        module = imagenet_stem1(c_in[0])
    elif ltype == "relu_conv_bn":
        module = ReLUConvBN(c_in[0], c_out[0], 1, 1, 0)
    elif ltype == "factorized_reduce":
        module = FactorizedReduce(c_in[0], c_out[0])
    elif ltype == "gap":
        module = nn.AdaptiveAvgPool2d(1)
    elif ltype in OPS[1:]:
        module = build_op(ltype, c_in[0], 2 if c_out[1] < c_in[1] else 1, pool_bn=False)
    else:
        raise NasxError(f"latency key {key!r} names no DARTS layer")
    return module, (1, *c_in)
