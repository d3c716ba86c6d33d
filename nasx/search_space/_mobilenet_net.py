"""RLNAS's MobileNet (ProxylessNAS-like) network: stem, fixed MBConv, 21 choice layers, head.

Layout (RLNAS ``mobilenet_search_space/rlnas/train_supernet/super_model.py``, reference B.2):
conv3x3 stride 2 (3->40), BN, ReLU6; a fixed MBConv of expansion 1 (40->24, k3); 21 layers
given as (channels, count, stride) (32,4,2), (56,4,2), (112,4,2), (128,4,1), (256,4,2),
(432,1,1), the stride on the first layer of each group; conv1x1 432->1728, BN, ReLU6, global
average pooling, Linear(1728, classes). Each layer is one MBConv of `BLOCKS` or a skip.

An op is a *reference op index*: -1 = skip, 0..5 = `BLOCKS` in RLNAS's ``blocks_keys`` order.
Module names stay close to RLNAS's (``stem`` = ``conv_bn``, ``fixed_block`` =
``MBConv_ratio_1``, ``head`` = ``conv_1x1_bn``); an MBConv's layers sit in ``conv`` at the same
Sequential indices as in RLNAS's ``torch_blocks.py``, so angle code reads like the original.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

#: (kernel, expansion) of reference ops 0..5 (RLNAS ``config.blocks_keys``)
BLOCKS: tuple[tuple[int, int], ...] = ((3, 3), (3, 6), (5, 3), (5, 6), (7, 3), (7, 6))
#: the skip op's reference index
SKIP = -1
#: (channels, layers, stride of the first layer) of each group of choice layers
STAGES: tuple[tuple[int, int, int], ...] = (
    (32, 4, 2),
    (56, 4, 2),
    (112, 4, 2),
    (128, 4, 1),
    (256, 4, 2),
    (432, 1, 1),
)
#: number of choice layers
N_LAYERS = sum(n for _, n, _ in STAGES)
#: layers that change width or stride and so cannot be skipped (RLNAS ``train.py:114-117``)
FIXED_LAYERS: tuple[int, ...] = (0, 4, 8, 12, 16, 20)
#: stem, fixed-block and head widths at width multiplier 1
STEM_CHANNELS, FIXED_CHANNELS, HEAD_CHANNELS = 40, 24, 1728


def block_key(op: int) -> str:
    """RLNAS's name of reference op ``op`` (0..5), e.g. ``mobilenet_5x5_ratio_3``."""
    k, e = BLOCKS[op]
    return f"mobilenet_{k}x{k}_ratio_{e}"


def scale(channels: int, width_mult: float) -> int:
    """``channels`` times ``width_mult``, rounded (at least 1).

    Every width is scaled, the head's 1728 included; RLNAS keeps 1728 below width 1, which
    only matters for nasx's CPU-sized variants (RLNAS itself always uses width 1).
    """
    return max(1, round(channels * width_mult))


def layer_plan(width_mult: float = 1.0) -> list[tuple[int, int, int]]:
    """``(inp, oup, stride)`` of the 21 choice layers at ``width_mult``."""
    out: list[tuple[int, int, int]] = []
    inp = scale(FIXED_CHANNELS, width_mult)
    for c, n, s in STAGES:
        oup = scale(c, width_mult)
        for i in range(n):
            out.append((inp, oup, s if i == 0 else 1))
            inp = oup
    return out


class MBConv(nn.Module):
    """Inverted residual: pw 1x1, BN, ReLU6, dw kxk, BN, ReLU6, pw-linear 1x1, BN.

    The hidden width is ``expand * inp``. With ``expand == 1`` the expanding pw conv is left
    out (dw, BN, ReLU6, pw-linear, BN), as ProxylessNAS/SPOS/RLNAS do. The input is added to
    the output when ``stride == 1`` and ``inp == oup``.

    Args:
        inp: input channels.
        oup: output channels.
        kernel: depthwise kernel size (odd; padding ``kernel // 2``).
        stride: depthwise stride.
        expand: expansion ratio.
    """

    def __init__(self, inp: int, oup: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        self.inp, self.oup, self.stride = inp, oup, stride
        self.use_res_connect = stride == 1 and inp == oup
        hidden = inp * expand
        pw: list[nn.Module] = []
        if expand != 1:
            pw = [
                nn.Conv2d(inp, hidden, 1, bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU6(inplace=True),
            ]
        self.conv = nn.Sequential(
            *pw,
            nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, oup, 1, bias=False),
            nn.BatchNorm2d(oup),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output (plus ``x`` on a residual block)."""
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def build_block(op: int, inp: int, oup: int, stride: int) -> MBConv:
    """The MBConv of reference op ``op`` (0..5)."""
    k, e = BLOCKS[op]
    return MBConv(inp, oup, k, stride, e)


def conv_bn_relu6(inp: int, oup: int, kernel: int, stride: int) -> nn.Sequential:
    """Conv (no bias, padding ``kernel // 2``), BN, ReLU6: the stem and the head."""
    return nn.Sequential(
        nn.Conv2d(inp, oup, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(inplace=True),
    )


def init_weights(net: nn.Module) -> None:
    """RLNAS's init: conv N(0, sqrt(2 / (k_h * k_w * C_out))), BN weight 1 and bias 0.

    The Linear keeps PyTorch's default, as in RLNAS's MobileNet supernet.
    """
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class MobileNetBackbone(nn.Module):
    """The fixed parts shared by the stand-alone network and the supernet.

    Subclasses fill ``features`` (one module per choice layer) and call `_head` on the last
    feature map.
    """

    def __init__(
        self, num_classes: int, in_channels: int, width_mult: float, dropout: float
    ) -> None:
        super().__init__()
        c_stem, c_fixed = scale(STEM_CHANNELS, width_mult), scale(FIXED_CHANNELS, width_mult)
        c_last, c_head = scale(STAGES[-1][0], width_mult), scale(HEAD_CHANNELS, width_mult)
        self.stem = conv_bn_relu6(in_channels, c_stem, 3, 2)
        self.fixed_block = MBConv(c_stem, c_fixed, 3, 1, 1)
        self.features = nn.ModuleList()
        self.head = conv_bn_relu6(c_last, c_head, 1, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_head, num_classes)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(x)).flatten(1)
        return self.classifier(self.dropout(x))


class MobileNetNetwork(MobileNetBackbone):
    """The stand-alone network of one architecture.

    Args:
        ops: 21 reference op indices, -1 (skip) or 0..5 (`BLOCKS`); a skip is only valid
            outside `FIXED_LAYERS`.
        num_classes: classifier outputs.
        in_channels: input image channels.
        width_mult: multiplier of every width (1.0 = RLNAS).
        dropout: dropout before the classifier (RLNAS's retraining uses 0.2, reference B.8).

    Raises:
        ValueError: not 21 ops, an op outside -1..5, or a skip in a fixed layer.
    """

    def __init__(
        self,
        ops: Sequence[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(num_classes, in_channels, width_mult, dropout)
        check_ops(ops)
        self.ops = tuple(int(op) for op in ops)
        for op, (inp, oup, s) in zip(self.ops, layer_plan(width_mult), strict=True):
            self.features.append(nn.Identity() if op == SKIP else build_block(op, inp, oup, s))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of images."""
        x = self.fixed_block(self.stem(x))
        for layer in self.features:
            x = layer(x)
        return self._head(x)


def check_ops(ops: Sequence[int]) -> None:
    """Raise `ValueError` unless ``ops`` is 21 reference ops with skips only where allowed."""
    if len(ops) != N_LAYERS:
        raise ValueError(f"expected {N_LAYERS} ops, got {len(ops)}")
    for i, op in enumerate(ops):
        if not SKIP <= op < len(BLOCKS):
            raise ValueError(f"op {op} of layer {i} is outside -1..{len(BLOCKS) - 1}")
        if op == SKIP and i in FIXED_LAYERS:
            raise ValueError(f"layer {i} cannot be skipped (fixed layers: {FIXED_LAYERS})")
