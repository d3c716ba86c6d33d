"""NAS-Bench-201 networks: cells, ops and the stand-alone network (supernet: `nasx.supernet.nb201`).

Module names follow D-X-Y's AutoDL code (``cells.{c}.edges.{i}<-{j}``), so that weight paths
read like the RLNAS angle code that indexes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: edges (to, from) in gene order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def edge_key(i: int, j: int) -> str:
    return f"{i}<-{j}"


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv -> BN; the conv has a bias exactly when the BN is not affine (AutoDL)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, affine: bool) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2, bias=not affine),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=True),
        )


def build_op(name: str, channels: int, affine: bool) -> nn.Module:
    """One candidate operation at stride 1 (``none`` is handled by the cells, not a module)."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"no module for op {name!r}")


class ResNetBasicBlock(nn.Module):
    """The fixed stride-2 residual block between NB201 stages."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.conv_b = ReLUConvBN(c_out, c_out, 3, affine=True)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(2, 2, 0), nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class SearchCell(nn.Module):
    """A cell holding every op on every edge; ``forward(x, ops)`` runs one op per edge."""

    def __init__(self, channels: int, affine: bool) -> None:
        super().__init__()
        self.edges = nn.ModuleDict(
            {
                edge_key(i, j): nn.ModuleList(
                    [nn.Identity() if n == "none" else build_op(n, channels, affine) for n in OPS]
                )
                for i, j in EDGES
            }
        )

    def forward(self, x: torch.Tensor, ops: Sequence[int]) -> torch.Tensor:
        nodes = [x]
        for i in range(1, 4):
            terms = [
                cast(nn.ModuleList, self.edges[edge_key(i, j)])[ops[e]](nodes[j])
                for e, (ii, j) in enumerate(EDGES)
                if ii == i and ops[e] != 0
            ]
            nodes.append(torch.stack(terms).sum(0) if terms else torch.zeros_like(x))
        return nodes[-1]


class FixedCell(nn.Module):
    """A cell with one chosen op per edge; ``none`` edges are left out (they add zeros)."""

    def __init__(self, channels: int, ops: Sequence[int], affine: bool) -> None:
        super().__init__()
        self.ops = tuple(ops)
        self.edges = nn.ModuleDict(
            {
                edge_key(i, j): build_op(OPS[k], channels, affine)
                for (i, j), k in zip(EDGES, self.ops, strict=True)
                if k != 0
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for i in range(1, 4):
            terms = [
                self.edges[edge_key(i, j)](nodes[j])
                for e, (ii, j) in enumerate(EDGES)
                if ii == i and self.ops[e] != 0
            ]
            nodes.append(torch.stack(terms).sum(0) if terms else torch.zeros_like(x))
        return nodes[-1]


def stage_channels(channels: int, cells_per_stage: int) -> list[tuple[int, bool]]:
    """(channels, is_reduction) of every cell: N cells, reduction, N cells, reduction, N cells."""
    out: list[tuple[int, bool]] = []
    for stage, mult in enumerate((1, 2, 4)):
        if stage > 0:
            out.append((channels * mult, True))
        out.extend([(channels * mult, False)] * cells_per_stage)
    return out


class _Backbone(nn.Module):
    """Stem, cells and head shared by the supernet and the stand-alone network."""

    def __init__(
        self,
        cells: list[nn.Module],
        channels: int,
        in_channels: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        self.cells = nn.ModuleList(cells)
        c_last = channels * 4
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_last), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_last, num_classes)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pooling(self.lastact(x))
        return self.classifier(x.flatten(1))


class NB201Network(_Backbone):
    """A stand-alone NAS-Bench-201 network for one cell.

    ``affine=False`` mirrors the supernet's ops (extraction); ``affine=True`` is the form
    NAS-Bench-201 trains and counts parameters and FLOPs on.
    """

    def __init__(
        self,
        ops: Sequence[int],
        channels: int,
        cells_per_stage: int,
        in_channels: int,
        num_classes: int,
        affine: bool = True,
    ) -> None:
        cells: list[nn.Module] = []
        c_prev = channels
        for c, red in stage_channels(channels, cells_per_stage):
            cells.append(ResNetBasicBlock(c_prev, c) if red else FixedCell(c, ops, affine))
            c_prev = c
        super().__init__(cells, channels, in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self._head(x)
