"""DARTS networks: the GeNAS/RLNAS weight-sharing supernet and the stand-alone cell network.

One candidate is 28 op indices: 14 for the normal cell, then 14 for the reduction cell; every
normal cell shares the first half and every reduction cell the second. Inside a cell, nodes 0
and 1 are the outputs of the two previous cells and nodes 2..5 are intermediate; edge k->j has
gene index ``k + sum(range(2, j))`` (GeNAS ``config.py``), and the cell outputs the channel
concatenation of nodes 2..5.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn
from torchvision.ops import stochastic_depth

from nasx.search_space._darts_ops import OPS, FactorizedReduce, ReLUConvBN, build_op

#: (node, input) of every edge, in gene order within one cell
EDGES: tuple[tuple[int, int], ...] = tuple((j, k) for j in range(2, 6) for k in range(j))
#: genes per cell type; a candidate has 2 * CELL_GENES
CELL_GENES = len(EDGES)
#: (gene, input) of the edges into each intermediate node 2..5
NODE_INPUTS: tuple[tuple[tuple[int, int], ...], ...] = tuple(
    tuple((e, k) for e, (j, k) in enumerate(EDGES) if j == node) for node in range(2, 6)
)


def cell_half(genes: Sequence[int], reduction: bool) -> Sequence[int]:
    """The 14 genes a cell runs: the reduction half for a reduction cell, else the normal."""
    return genes[CELL_GENES:] if reduction else genes[:CELL_GENES]


def reduction_cells(layers: int) -> tuple[int, ...]:
    """Indices of the reduction cells: ``layers // 3`` and ``2 * layers // 3`` (DARTS)."""
    return (layers // 3, 2 * layers // 3)


def cifar_stem(c_in: int, c_out: int) -> nn.Sequential:
    """NetworkCIFAR's stem: 3 x 3 convolution and BN at full resolution."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))


def imagenet_stem0(c_in: int, c: int) -> nn.Sequential:
    """NetworkImageNet's ``stem0``: two stride-2 3 x 3 convolutions (to C/2, then C)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c // 2, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c // 2),
        nn.ReLU(inplace=True),
        nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c),
    )


def imagenet_stem1(c: int) -> nn.Sequential:
    """NetworkImageNet's ``stem1``: ReLU, stride-2 3 x 3 convolution, BN."""
    return nn.Sequential(
        nn.ReLU(inplace=True),
        nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c),
    )


class Cell(nn.Module):
    """A DARTS cell: all 8 operations on every edge (``ops=None``, supernet) or the chosen ones.

    A stand-alone cell holds only the chosen non-``none`` operation of each edge.

    Parameter names are ``preprocess0``, ``preprocess1`` and ``edges.<gene>.<op>.*`` in the
    supernet, ``edges.<gene>.*`` in the stand-alone cell, so extraction only drops ``<op>``.
    """

    def __init__(
        self,
        c_pp: int,
        c_p: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
        ops: Sequence[int] | None,
        pool_bn: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.ops = None if ops is None else tuple(ops)
        self.preprocess0: nn.Module = (
            FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        )
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        edges: dict[str, nn.Module] = {}
        for e, (_, k) in enumerate(EDGES):
            stride = 2 if reduction and k < 2 else 1
            if self.ops is None:
                edges[str(e)] = nn.ModuleList([build_op(n, c, stride, pool_bn) for n in OPS])
            elif self.ops[e] != 0:
                edges[str(e)] = build_op(OPS[self.ops[e]], c, stride, pool_bn)
        self.edges = nn.ModuleDict(edges)

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        ops: Sequence[int] | None = None,
        drop_prob: float = 0.0,
    ) -> torch.Tensor:
        """Run the cell; the supernet cell needs ``ops`` (14 genes), a fixed cell ignores it.

        ``drop_prob`` > 0 drops each non-identity op's output per sample while training
        (DARTS's drop path; torchvision's ``stochastic_depth``, rescaled by 1 / (1 - p)).
        """
        genes = self.ops if self.ops is not None else ops
        if genes is None:
            raise ValueError("a supernet cell needs the 14 op indices of its path")
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for inputs in NODE_INPUTS:
            terms = []
            for e, k in inputs:
                if genes[e] == 0:
                    continue
                op = self.edges[str(e)]
                if self.ops is None:
                    op = cast(nn.ModuleList, op)[genes[e]]
                h = op(states[k])
                if drop_prob > 0 and self.training and not isinstance(op, nn.Identity):
                    h = stochastic_depth(h, drop_prob, "row", training=True)
                terms.append(h)
            if not terms:  # only when a path breaks the two-inputs rule: the node is zero
                step = 2 if self.reduction else 1
                terms.append(states[1][:, :, ::step, ::step].mul(0.0))
            states.append(torch.stack(terms).sum(0))
        return torch.cat(states[2:], dim=1)


class DartsNetwork(nn.Module):
    """A DARTS network of ``layers`` cells: the supernet (``genes=None``) or one candidate.

    Args:
        channels: C, the channels of the first cells (doubled at each reduction cell).
        layers: number of cells; reductions at ``layers // 3`` and ``2 * layers // 3``.
        in_channels: input image channels.
        num_classes: classifier outputs.
        genes: the 28 op indices of a stand-alone network, or ``None`` for the supernet.
        stem: ``cifar`` (3 x 3 conv to 3C, BN; GeNAS supernet and NetworkCIFAR) or
            ``imagenet`` (NetworkImageNet: three stride-2 convolutions, for 224 x 224 inputs).
        pool_bn: follow each pooling with an affine BN, as the GeNAS supernet does; the
            stand-alone DARTS network does not.
        auxiliary: add DARTS's auxiliary head after cell ``2 * layers // 3`` (retraining:
            in training mode ``forward`` returns ``(logits, aux_logits)``). It is not part of
            the published parameter and FLOP counts, so the costed network has none.

    ``drop_path_prob`` (an attribute, 0 by default) is DARTS's drop path on every cell's
    non-identity ops while training; a retraining recipe raises it over the epochs.
    """

    def __init__(
        self,
        channels: int,
        layers: int,
        in_channels: int,
        num_classes: int,
        genes: Sequence[int] | None = None,
        stem: str = "cifar",
        pool_bn: bool = True,
        auxiliary: bool = False,
    ) -> None:
        super().__init__()
        if auxiliary and genes is None:
            raise ValueError("the auxiliary head belongs to a stand-alone network (give genes)")
        self.drop_path_prob = 0.0
        if genes is not None and len(genes) != 2 * CELL_GENES:
            raise ValueError(f"a DARTS candidate has {2 * CELL_GENES} genes, got {len(genes)}")
        self.stem_kind = stem
        c = channels
        if stem == "cifar":
            self.stem: nn.Module = cifar_stem(in_channels, 3 * c)
            c_pp, c_p, reduction_prev = 3 * c, 3 * c, False
        elif stem == "imagenet":
            self.stem0 = imagenet_stem0(in_channels, c)
            self.stem1 = imagenet_stem1(c)
            c_pp, c_p, reduction_prev = c, c, True
        else:
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        reductions = reduction_cells(layers)
        cells: list[nn.Module] = []
        c_aux = 0
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            half = None if genes is None else cell_half(genes, reduction)
            cells.append(Cell(c_pp, c_p, c, reduction, reduction_prev, half, pool_bn))
            reduction_prev = reduction
            c_pp, c_p = c_p, 4 * c
            if i == 2 * layers // 3:
                c_aux = c_p
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        self.aux_index = 2 * layers // 3
        self.auxiliary_head: nn.Module | None = (
            AuxiliaryHead(c_aux, num_classes, imagenet=stem == "imagenet") if auxiliary else None
        )

    def forward(self, x: torch.Tensor, path: Sequence[int] | None = None) -> torch.Tensor:
        """Logits; the supernet runs ``path`` (28 genes), a stand-alone network its own genes."""
        if self.stem_kind == "cifar":
            s0 = s1 = self.stem(x)
        else:
            s0 = self.stem0(x)
            s1 = self.stem1(s0)
        aux: torch.Tensor | None = None
        for i, cell in enumerate(self.cells):
            ops = None if path is None else cell_half(path, cast(Cell, cell).reduction)
            s0, s1 = s1, cell(s0, s1, ops, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return logits if aux is None else (logits, aux)  # type: ignore[return-value]


class AuxiliaryHead(nn.Module):
    """DARTS's auxiliary classifier (``AuxiliaryHeadCIFAR`` / ``AuxiliaryHeadImageNet``).

    ReLU, 5 x 5 average pooling (stride 3 on CIFAR's 8 x 8 maps, 2 on ImageNet's 14 x 14),
    1 x 1 conv to 128, BN, ReLU, 2 x 2 conv to 768, BN (CIFAR only, as DARTS), ReLU, linear.
    A map smaller than the pooling window (CPU-sized inputs) is pooled to 2 x 2 adaptively.
    """

    def __init__(self, channels: int, num_classes: int, imagenet: bool = False) -> None:
        super().__init__()
        self.stride = 2 if imagenet else 3
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.Identity() if imagenet else nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.relu(x)
        if min(x.shape[-2:]) >= 5:
            x = nn.functional.avg_pool2d(x, 5, self.stride, 0, count_include_pad=False)
        else:
            x = nn.functional.adaptive_avg_pool2d(x, 2)
        x = self.features(x)
        return self.classifier(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))
