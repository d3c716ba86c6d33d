"""NAG's weight-sharing supernet: every op at every vertex position of both cell types.

Like the reference's one-shot model (seed-nag.md §1.3), each vertex position owns its sep3,
sep5 and (in reduction cells) identity-reduce weights and its input reductions; pools are
shared and parameter-free. Unlike it, the cell output is the stand-alone concatenation
(``C * in_degree`` channels, no weight-shared 1 x 1 output conv), and the next cell's
calibration convolutions hold one C-channel column block per possible output predecessor
(vertices 0..V-2) and read the blocks of the active ones. So a path computes exactly its
stand-alone network, and `extract` is a slice of this supernet's tensors under the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nasx.search_space._nag_cell import CellSpec
from nasx.search_space._nag_net import (
    CellBody,
    CellPlace,
    NAGNetwork,
    Vertex,
    kaiming_init,
    macro_layout,
    stem,
)
from nasx.search_space._nag_ops import (
    FactorizedReduce,
    Identity,
    IdentityReduce,
    Pool,
    ReLUConvBN,
    ReLUReduce,
    SepConv,
)
from nasx.search_space.base import Architecture
from nasx.search_space.nag_cell import NAGCellSpace
from nasx.supernet.base import Supernet, register_supernet

#: a supernet path: the (normal, reduction) cells every cell of that type runs
Path = tuple[CellSpec, CellSpec]


@dataclass(frozen=True)
class _Source:
    """A tensor feeding a calibration: ``width`` channels, ``slots`` of ``c_slot`` each.

    ``slots`` is ``None`` for the stem, whose output is one fixed block.
    """

    x: torch.Tensor
    c_slot: int
    slots: tuple[int, ...] | None

    @property
    def width(self) -> int:
        return self.c_slot * (1 if self.slots is None else len(self.slots))

    def cols(self) -> torch.Tensor | None:
        if self.slots is None:
            return None
        return _columns(self.c_slot, self.slots, self.x.device)


def _columns(c_slot: int, slots: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """The channel indices of blocks ``slots`` of ``c_slot`` channels each."""
    return _cpu_columns(c_slot, slots).to(device)


@lru_cache(maxsize=4096)
def _cpu_columns(c_slot: int, slots: tuple[int, ...]) -> torch.Tensor:
    return (torch.tensor(slots).unsqueeze(1) * c_slot + torch.arange(c_slot)).flatten()


class _SuperCell(CellBody):
    """A cell holding every op at every position; calibrations read any column blocks."""

    def __init__(self, c_pp: int, c_p: int, place: CellPlace, max_vertices: int) -> None:
        super().__init__(place.reduction)
        self.place, c = place, place.channels
        self.pre0: nn.Module = ReLUReduce(c_pp, c) if place.reduction_prev else ReLUConvBN(c_pp, c)
        self.pre1 = ReLUConvBN(c_p, c)
        for t in range(2, max_vertices - 1):
            ops: dict[str, nn.Module] = {
                "sep3": SepConv(c, 3),
                "sep5": SepConv(c, 5),
                "avg3": Pool("avg"),
                "max3": Pool("max"),
                "id": IdentityReduce(c, c) if place.reduction else Identity(),
            }
            self.vertices[str(t)] = Vertex(ops, (0, 1) if place.reduction else (), c)
        if place.reduction:
            self.out_reduce.update({"0": FactorizedReduce(c, c), "1": FactorizedReduce(c, c)})

    def calibrate(self, k: int, src: _Source) -> torch.Tensor:
        """Input ``k`` calibrated as the stand-alone cell does for ``src``'s width (§1.2.1)."""
        pre = self.pre0 if k == 0 else self.pre1
        if isinstance(pre, ReLUConvBN) and src.width == self.place.channels:
            return src.x  # the stand-alone cell has no calibration here
        return cast(torch.Tensor, pre(src.x, src.cols()))


@register_supernet(NAGCellSpace)
class NAGCellSupernet(Supernet):
    """The NAG network at the space's ``channels`` / ``cells_per_stage`` with every path.

    ``forward(x, path)`` runs a (normal, reduction) `CellSpec` pair in every cell of each
    type; `sample_path` draws it as the space samples (the reference's pool distribution,
    §2.3), one pair per step as the reference's single-path training (§2.4). No auxiliary
    head and no drop path: nasx's supernet recipes use neither.
    """

    space: NAGCellSpace

    def __init__(self, space: NAGCellSpace) -> None:
        super().__init__()
        self.space = space
        c, v = space.channels, space.max_vertices
        self.stem = stem(space.in_channels, 3 * c)
        places = macro_layout(c, space.cells_per_stage)
        # a cell's calibration input: the stem (3C, one block) or a cell's V-1 blocks
        widths = [3 * c, 3 * c] + [p.channels * (v - 1) for p in places]
        self.cells = nn.ModuleList(
            [_SuperCell(widths[i], widths[i + 1], p, v) for i, p in enumerate(places)]
        )
        self.places = places
        self.classifier = nn.Linear(widths[-1], space.num_classes)
        kaiming_init(self)

    def forward(self, x: torch.Tensor, path: Path) -> torch.Tensor:
        s = self.stem(x)
        src0 = src1 = _Source(s, s.shape[1], None)
        for cell in self.cells:
            cell = cast(_SuperCell, cell)
            spec = path[1] if cell.reduction else path[0]
            x0 = cell.calibrate(0, src0) if spec.uses_input(0) else None
            x1 = cell.calibrate(1, src1) if spec.uses_input(1) else None
            out = cell.run(spec, x0, x1)
            src0, src1 = src1, _Source(out, cell.place.channels, spec.out_preds)
        feat = F.adaptive_avg_pool2d(src1.x, 1).flatten(1)
        w = self.classifier.weight
        cols = src1.cols()
        return F.linear(feat, w if cols is None else w.index_select(1, cols), self.classifier.bias)

    def sample_path(self, rng: np.random.Generator) -> Path:
        return self.space.cells(self.space.sample(rng))

    def path_of(self, arch: Architecture) -> Path:
        return self.space.cells(arch)

    def extract(self, arch: Architecture) -> NAGNetwork:
        """`space.build_search_network(arch)` holding copies of this supernet's weights.

        Same parameter names; the calibration convolutions and the classifier take the
        column blocks of their source cell's output predecessors.
        """
        net = self.space.build_search_network(arch)
        normal, reduce = self.path_of(arch)
        slots = [reduce.out_preds if p.reduction else normal.out_preds for p in self.places]
        c_slots = [p.channels for p in self.places]

        def source(key: str) -> int | None:
            """Index of the cell whose output ``key``'s tensor reads (None: the stem)."""
            if key.startswith("classifier."):
                return len(self.places) - 1
            i, pre = int(key.split(".")[1]), key.split(".")[2]
            j = i - 2 if pre == "pre0" else i - 1
            return j if j >= 0 else None

        state = self.state_dict()
        out: dict[str, torch.Tensor] = {}
        for key, want in net.state_dict().items():
            value = state[key]
            if value.shape != want.shape:
                j = source(key)
                assert j is not None, f"{key}: stem-fed tensors are never sliced"
                value = value.index_select(1, _columns(c_slots[j], slots[j], value.device))
            out[key] = value.detach().clone()
        net.load_state_dict(out)
        return net.to(self.device)
