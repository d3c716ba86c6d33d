"""NAG's operations (seed-nag.md §1.1-1.2), usable at a fixed stride or a per-call one.

The same classes serve the stand-alone network and the weight-sharing supernet: a vertex op's
stride can be overridden per call (the supernet decides it from the path), and the 1 x 1
convolutions that read a previous cell's output can read a column subset of their weight
(``cols``: the channels of the predecessors that output concatenates), so an extracted
network is a slice of the supernet's tensors under the same names.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _conv(x: torch.Tensor, conv: nn.Conv2d, cols: torch.Tensor | None, stride: int) -> torch.Tensor:
    w = conv.weight if cols is None else conv.weight.index_select(1, cols)
    return F.conv2d(x, w, None, stride, conv.padding, conv.dilation, conv.groups)


class SepConv(nn.Module):
    """The reference's ``seqconv``: a DARTS separable conv applied twice (§1.1).

    ReLU, depthwise k x k (stride s), 1 x 1, BN, ReLU, depthwise k x k, 1 x 1, BN; C -> C.
    """

    def __init__(self, channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        c, pad = channels, kernel // 2
        self.stride = stride
        self.dw1 = nn.Conv2d(c, c, kernel, stride, pad, groups=c, bias=False)
        self.pw1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.dw2 = nn.Conv2d(c, c, kernel, 1, pad, groups=c, bias=False)
        self.pw2 = nn.Conv2d(c, c, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        x = _conv(F.relu(x), self.dw1, None, self.stride if stride is None else stride)
        x = self.bn1(self.pw1(x))
        return self.bn2(self.pw2(self.dw2(F.relu(x))))


class Pool(nn.Module):
    """3 x 3 average (``count_include_pad=False``) or max pooling, padding 1 (§1.1)."""

    def __init__(self, kind: str, stride: int = 1) -> None:
        super().__init__()
        if kind not in ("avg", "max"):
            raise ValueError(f"pool kind must be 'avg' or 'max', got {kind!r}")
        self.kind, self.stride = kind, stride

    def forward(self, x: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        s = self.stride if stride is None else stride
        if self.kind == "max":
            return F.max_pool2d(x, 3, s, 1)
        return F.avg_pool2d(x, 3, s, 1, count_include_pad=False)


class Identity(nn.Module):
    """The ``identity`` op at stride 1 (the stand-alone cell and the supernet's stride 1)."""

    def forward(self, x: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        return x


class FactorizedReduce(nn.Module):
    """Stride-2 1 x 1 convs on x and on x shifted by one pixel, concatenated, BN (§1.2.6).

    No ReLU (the reference's form). The shift pads right/bottom and crops the first row and
    column, so odd sizes work. ``cols`` reads a column subset of both convolutions.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {c_out}")
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, cols: torch.Tensor | None = None) -> torch.Tensor:
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        a, b = _conv(x, self.conv_1, cols, 2), _conv(shifted, self.conv_2, cols, 2)
        return self.bn(torch.cat([a, b], dim=1))


class IdentityReduce(FactorizedReduce):
    """The ``identity`` op where a reduction cell needs stride 2 (§1.1): FactorizedReduce."""

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, stride: int | None = None
    ) -> torch.Tensor:
        return super().forward(x)


class ReLUConvBN(nn.Module):
    """ReLU, 1 x 1 conv, BN: the calibration of an input whose channels are not C (§1.2.1)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, cols: torch.Tensor | None = None) -> torch.Tensor:
        return self.bn(_conv(F.relu(x), self.conv, cols, 1))


class ReLUReduce(nn.Module):
    """ReLU then FactorizedReduce: the calibration of s0 at twice s1's size (§1.2.1)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.reduce = FactorizedReduce(c_in, c_out)

    def forward(self, x: torch.Tensor, cols: torch.Tensor | None = None) -> torch.Tensor:
        return self.reduce(F.relu(x), cols)


def build_op(name: str, channels: int, stride: int) -> nn.Module:
    """The stand-alone module of op ``name`` (`OPS` short name) at ``stride``."""
    if name in ("sep3", "sep5"):
        return SepConv(channels, 3 if name == "sep3" else 5, stride)
    if name in ("avg3", "max3"):
        return Pool(name[:3], stride)
    if name == "id":
        return Identity() if stride == 1 else IdentityReduce(channels, channels)
    raise ValueError(f"unknown NAG op {name!r}")
