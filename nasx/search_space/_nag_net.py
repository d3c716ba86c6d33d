"""NAG's stand-alone CIFAR network (seed-nag.md §1.2-1.3) and what the supernet shares with it.

Macro layout: a 3 x 3 conv stem to 3C with BN, ``3N + 2`` cells with reduction cells at ``N``
and ``2N + 1`` (C doubles at each), global average pooling, dropout, linear classifier; the
auxiliary head sits after cell ``2N + 1``. A cell outputs ``C * in_degree(output)`` channels
and the next cell calibrates them back to C (§1.2.1), so channel counts depend on the cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torchvision.ops import stochastic_depth

from nasx.search_space._darts_net import AuxiliaryHead
from nasx.search_space._nag_cell import CellSpec
from nasx.search_space._nag_ops import FactorizedReduce, ReLUConvBN, ReLUReduce, build_op


@dataclass(frozen=True)
class CellPlace:
    """Where a cell sits: its C, whether it reduces, whether its s0 is twice s1's size."""

    channels: int
    reduction: bool
    reduction_prev: bool


def macro_layout(channels: int, cells_per_stage: int) -> list[CellPlace]:
    """The ``3N + 2`` cells of the CIFAR network (§1.3): reductions at ``N`` and ``2N + 1``."""
    n = cells_per_stage
    reductions = (n, 2 * n + 1)
    places, c, prev = [], channels, False
    for i in range(3 * n + 2):
        red = i in reductions
        c = 2 * c if red else c
        places.append(CellPlace(c, red, prev))
        prev = red
    return places


def calibration(c_in: int, c: int, reduce: bool) -> nn.Module:
    """§1.2.1: ReLU + FactorizedReduce at twice the size, else ReLU-Conv-BN if ``c_in != c``."""
    if reduce:
        return ReLUReduce(c_in, c)
    return ReLUConvBN(c_in, c) if c_in != c else nn.Identity()


def kaiming_init(net: nn.Module) -> None:
    """Kaiming-normal on every parameter with at least two dimensions (``model.py:73-76``)."""
    for p in net.parameters():
        if p.dim() >= 2:
            nn.init.kaiming_normal_(p)


class Vertex(nn.Module):
    """A vertex position: its ops, and in a reduction cell the reductions of its inputs.

    ``ops.<name>`` holds one op in a stand-alone cell and all of them in the supernet;
    ``reduce.<k>`` is the FactorizedReduce of input k where the vertex also reads an
    intermediate vertex (§1.2.3).
    """

    def __init__(self, ops: dict[str, nn.Module], reduce: Sequence[int], channels: int) -> None:
        super().__init__()
        self.ops = nn.ModuleDict(ops)
        self.reduce = nn.ModuleDict({str(k): FactorizedReduce(channels, channels) for k in reduce})


class CellBody(nn.Module):
    """The vertices and output of a cell, run for a `CellSpec` on calibrated inputs.

    Shared by the stand-alone cell and the supernet cell, whose modules have the same names.
    In a reduction cell, a vertex reading only inputs runs its op at stride 2; one that also
    reads an intermediate vertex reduces its input terms and runs at stride 1; inputs feeding
    the output are reduced (``out_reduce.<k>``, §1.2.3-4). Drop path hits every vertex op but
    a stride-1 identity (the reference's stand-alone net also drops identities, §1.2.5 quirk).
    """

    def __init__(self, reduction: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.vertices = nn.ModuleDict()
        self.out_reduce = nn.ModuleDict()

    def run(
        self,
        spec: CellSpec,
        x0: torch.Tensor | None,
        x1: torch.Tensor | None,
        drop_prob: float = 0.0,
    ) -> torch.Tensor:
        """The cell output for calibrated inputs (``None``: an input no vertex reads)."""
        states: list[torch.Tensor | None] = [x0, x1]
        for k, op in enumerate(spec.ops):
            preds = spec.preds[k]
            vertex = cast(Vertex, self.vertices[str(k + 2)])
            mixed = self.reduction and any(p >= 2 for p in preds)
            stride = 2 if self.reduction and not mixed else 1
            x = self._term(states, preds[0], vertex.reduce if mixed else None)
            for p in preds[1:]:
                x = x + self._term(states, p, vertex.reduce if mixed else None)
            if op == "id" and stride == 1:
                states.append(x)
                continue
            h = vertex.ops[op](x, stride)
            if drop_prob > 0 and self.training:
                h = stochastic_depth(h, drop_prob, "row", training=True)
            states.append(h)
        reduce = self.out_reduce if self.reduction else None
        return torch.cat([self._term(states, p, reduce) for p in spec.out_preds], dim=1)

    @staticmethod
    def _term(
        states: list[torch.Tensor | None], p: int, reduce: nn.ModuleDict | None
    ) -> torch.Tensor:
        s = states[p]
        assert s is not None, f"vertex {p} is read but was not computed"
        return reduce[str(p)](s) if reduce is not None and p < 2 else s


class NAGCell(CellBody):
    """A stand-alone cell: exactly the modules its `CellSpec` uses.

    The calibrations ``pre0`` / ``pre1`` are identities for an input no vertex reads.
    """

    def __init__(self, spec: CellSpec, c_pp: int, c_p: int, place: CellPlace) -> None:
        super().__init__(place.reduction)
        self.spec, c = spec, place.channels
        self.pre0 = (
            calibration(c_pp, c, place.reduction_prev) if spec.uses_input(0) else nn.Identity()
        )
        self.pre1 = calibration(c_p, c, False) if spec.uses_input(1) else nn.Identity()
        for k, op in enumerate(spec.ops):
            preds = spec.preds[k]
            mixed = place.reduction and any(p >= 2 for p in preds)
            stride = 2 if place.reduction and not mixed else 1
            reduce = [p for p in preds if p < 2] if mixed else []
            self.vertices[str(k + 2)] = Vertex({op: build_op(op, c, stride)}, reduce, c)
        if place.reduction:
            for p in (0, 1):
                if p in spec.out_preds:
                    self.out_reduce[str(p)] = FactorizedReduce(c, c)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        x0 = self.pre0(s0) if self.spec.uses_input(0) else None
        x1 = self.pre1(s1) if self.spec.uses_input(1) else None
        return self.run(self.spec, x0, x1, drop_prob)


def stem(in_channels: int, c_stem: int) -> nn.Sequential:
    """The CIFAR stem: 3 x 3 conv to 3C, BN (§1.3)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem)
    )


class NAGNetwork(nn.Module):
    """The stand-alone NAG network of a (normal, reduction) cell pair (§1.3, CIFAR form).

    Args:
        cells: the normal and the reduction `CellSpec`.
        channels: C of the first stage.
        cells_per_stage: N; ``3N + 2`` cells.
        in_channels: input image channels.
        num_classes: classifier outputs.
        dropout: dropout before the classifier (the reference's ``1 - keep_prob``).
        auxiliary: add the auxiliary head after cell ``2N + 1`` (retraining; in training mode
            ``forward`` then returns ``(logits, aux_logits)``). Not part of parameter counts.

    ``drop_path_prob`` (an attribute, 0 by default) is the drop probability of the last cell;
    cell i uses ``drop_path_prob * (i + 1) / (3N + 2)``, the reference's per-layer scaling
    (§1.2.5); a retraining recipe raises it over the steps.
    """

    def __init__(
        self,
        cells: tuple[CellSpec, CellSpec],
        channels: int,
        cells_per_stage: int,
        in_channels: int,
        num_classes: int,
        dropout: float = 0.0,
        auxiliary: bool = False,
    ) -> None:
        super().__init__()
        self.drop_path_prob = 0.0
        self.stem = stem(in_channels, 3 * channels)
        c_pp = c_p = 3 * channels
        self.aux_index = 2 * cells_per_stage + 1
        c_aux, cells_ = 0, []
        for i, place in enumerate(macro_layout(channels, cells_per_stage)):
            spec = cells[1] if place.reduction else cells[0]
            cells_.append(NAGCell(spec, c_pp, c_p, place))
            c_pp, c_p = c_p, place.channels * len(spec.out_preds)
            if i == self.aux_index:
                c_aux = c_p
        self.cells = nn.ModuleList(cells_)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_p, num_classes)
        self.auxiliary_head: nn.Module | None = (
            AuxiliaryHead(c_aux, num_classes) if auxiliary else None
        )
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        aux: torch.Tensor | None = None
        n = len(self.cells)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob * (i + 1) / n)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(self.dropout(self.global_pooling(s1).flatten(1)))
        return logits if aux is None else (logits, aux)  # type: ignore[return-value]
