"""The RLNAS/SPOS NAS-Bench-201 supernet: 3N search cells holding every op on every edge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import numpy as np
import torch
from torch import nn

from nasx.search_space._nb201_net import (
    EDGES,
    OPS,
    NB201Network,
    ResNetBasicBlock,
    SearchCell,
    _Backbone,
    edge_key,
    stage_channels,
)
from nasx.search_space.base import Architecture, pick_ops_state
from nasx.search_space.nb201 import NB201Space
from nasx.supernet.base import Supernet, register_supernet

#: input-to-output paths of the cell (RLNAS weight_angle.py), as node sequences
ANGLE_PATHS: tuple[tuple[int, ...], ...] = ((0, 3), (0, 2, 3), (0, 1, 2, 3), (0, 1, 3))


@register_supernet(NB201Space)
class NB201Supernet(_Backbone, Supernet):
    """Stem, N search cells, residual block, N cells, residual block, N cells, head.

    Module names follow D-X-Y's AutoDL code (``cells.{c}.edges.{i}<-{j}.{op}``), so weight
    paths read like the RLNAS angle code that indexes them. Search-cell ops are
    ``affine=False``, as in the RLNAS supernet.
    """

    space: NB201Space
    has_path_weights = True

    def __init__(self, space: NB201Space) -> None:
        cells: list[nn.Module] = []
        c_prev = space.channels
        for c, red in stage_channels(space.channels, space.cells_per_stage):
            cells.append(ResNetBasicBlock(c_prev, c) if red else SearchCell(c, affine=False))
            c_prev = c
        super().__init__(cells, space.channels, space.in_channels, space.num_classes)
        self.space = space
        #: indices of the search cells, in order
        self.search_cells = [i for i, m in enumerate(self.cells) if isinstance(m, SearchCell)]

    def forward(self, x: torch.Tensor, path: Sequence[Sequence[int]]) -> torch.Tensor:
        """Run ``path``: one gene tuple per search cell."""
        x = self.stem(x)
        k = 0
        for cell in self.cells:
            if isinstance(cell, SearchCell):
                x = cell(x, path[k])
                k += 1
            else:
                x = cell(x)
        return self._head(x)

    def sample_path(self, rng: np.random.Generator) -> list[tuple[int, ...]]:
        """Independent ops per search cell; a node whose inputs are all ``none`` is re-drawn."""
        return [_sample_cell(rng) for _ in range(3 * self.space.cells_per_stage)]

    def path_of(self, arch: Architecture) -> list[tuple[int, ...]]:
        return [arch.genes] * (3 * self.space.cells_per_stage)

    def extract(self, arch: Architecture) -> NB201Network:
        sp = self.space
        net = NB201Network(
            arch.genes, sp.channels, sp.cells_per_stage, sp.in_channels, sp.num_classes, False
        )
        chosen = {edge_key(i, j): str(k) for (i, j), k in zip(EDGES, arch.genes, strict=True)}
        net.load_state_dict(pick_ops_state(self.state_dict(), lambda _c, e: chosen[e]))
        return net.to(self.device)

    def path_weights(
        self, state: Mapping[str, torch.Tensor], arch: Architecture
    ) -> torch.Tensor | None:
        """RLNAS ``weight_angle.py`` for NB201: fixed segments plus conv weights on every path.

        ``skip_connect`` adds nothing, ``avg_pool_3x3`` adds a constant 1/9 block of shape
        ``[C_out, 3, 3]`` (as RLNAS), a path through ``none`` is dropped; ``None`` when every
        path is dropped.
        """
        return nb201_angle_vector(state, arch)


def _sample_cell(rng: np.random.Generator) -> tuple[int, ...]:
    ops = [0] * len(EDGES)
    for node in (1, 2, 3):
        idx = [e for e, (i, _) in enumerate(EDGES) if i == node]
        while True:
            draw = rng.integers(0, len(OPS), size=len(idx))
            if draw.any():
                break
        for e, k in zip(idx, draw, strict=True):
            ops[e] = int(k)
    return tuple(ops)


def nb201_angle_vector(
    state: Mapping[str, torch.Tensor], arch: Architecture
) -> torch.Tensor | None:
    """The NB201 angle vector of ``arch`` read from a supernet state dict (see `path_weights`)."""
    genes = dict(zip(EDGES, arch.genes, strict=True))
    live = [p for p in ANGLE_PATHS if all(genes[(b, a)] != 0 for a, b in pairwise(p))]
    if not live:
        return None
    names = sorted({k.split(".")[1] for k in state if k.startswith("cells.")}, key=int)
    search = [c for c in names if f"cells.{c}.edges.1<-0.3.1.weight" in state]
    fixed = [c for c in names if c not in search]
    segs = [state["stem.0.weight"], state["stem.1.weight"], state["stem.1.bias"]]
    for c in fixed:
        p = f"cells.{c}."
        segs += [
            state[p + "conv_a.1.weight"],
            state[p + "conv_a.2.weight"],
            state[p + "conv_a.2.bias"],
            state[p + "conv_b.1.weight"],
            state[p + "conv_b.2.weight"],
            state[p + "conv_b.2.bias"],
            state[p + "downsample.1.weight"],
        ]
    for path in live:
        for c in search:
            for a, b in pairwise(path):
                k = genes[(b, a)]
                e = f"cells.{c}.edges.{edge_key(b, a)}"
                if OPS[k] in ("nor_conv_1x1", "nor_conv_3x3"):
                    segs.append(state[f"{e}.{k}.1.weight"])
                elif OPS[k] == "avg_pool_3x3":
                    # RLNAS: the 3x3 conv weight's shape without its input channels
                    w = state[f"{e}.{OPS.index('nor_conv_3x3')}.1.weight"]
                    segs.append(torch.full((w.shape[0], *w.shape[2:]), 1.0 / 9.0))
    segs += [
        state["lastact.0.weight"],
        state["lastact.0.bias"],
        state["classifier.weight"],
        state["classifier.bias"],
    ]
    return torch.cat([s.detach().float().reshape(-1).cpu() for s in segs])
