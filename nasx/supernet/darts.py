"""The GeNAS/RLNAS DARTS supernet: every op on every edge of the normal and reduction cells."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise

import numpy as np
import torch

from nasx.search_space._darts_net import DartsNetwork, cell_half, reduction_cells
from nasx.search_space._darts_ops import OPS
from nasx.search_space.base import Architecture, pick_ops_state
from nasx.search_space.darts import DartsSpace, gene_index
from nasx.supernet.base import Supernet, register_supernet

#: every input-to-node path of a cell (GeNAS ``config.paths``): 2 + 4 + 8 + 16 = 30 node
#: sequences; partial paths count because every intermediate node feeds the cell output
ANGLE_PATHS: tuple[tuple[int, ...], ...] = tuple(
    (start, *(m for b, m in enumerate(range(2, end)) if mask >> b & 1), end)
    for end in range(2, 6)
    for start in (0, 1)
    for mask in range(2 ** (end - 2))
)

#: (gene, input) of every edge of each `ANGLE_PATHS` path
_PATH_EDGES: tuple[tuple[tuple[int, int], ...], ...] = tuple(
    tuple((gene_index(b, a), a) for a, b in pairwise(path)) for path in ANGLE_PATHS
)


@register_supernet(DartsSpace)
class DartsSupernet(DartsNetwork, Supernet):
    """The CIFAR-form DARTS network with all eight ops on each edge.

    ``space.channels`` C and ``space.layers`` cells; ``forward(x, path)`` runs the 28 genes of
    ``path`` (GeNAS/RLNAS ``super_model.py``; every BN affine).
    """

    space: DartsSpace
    has_path_weights = True

    def __init__(self, space: DartsSpace) -> None:
        super().__init__(space.channels, space.layers, space.in_channels, space.num_classes)
        self.space = space

    def sample_path(self, rng: np.random.Generator) -> tuple[int, ...]:
        """One candidate for every cell (GeNAS ``get_random_cand`` + ``check_cand``)."""
        return self.space.sample(rng).genes

    def path_of(self, arch: Architecture) -> tuple[int, ...]:
        return arch.genes

    def extract(self, arch: Architecture) -> DartsNetwork:
        sp = self.space
        net = DartsNetwork(sp.channels, sp.layers, sp.in_channels, sp.num_classes, arch.genes)
        reductions = {str(c) for c in reduction_cells(sp.layers)}

        def chosen(cell: str, edge: str) -> str:
            return str(cell_half(arch.genes, cell in reductions)[int(edge)])

        net.load_state_dict(pick_ops_state(self.state_dict(), chosen))
        return net.to(self.device)

    def path_weights(
        self, state: Mapping[str, torch.Tensor], arch: Architecture
    ) -> torch.Tensor | None:
        """GeNAS/RLNAS ``cand_evaluator.py:240-529`` on the CIFAR supernet.

        Per cell and per path of `ANGLE_PATHS` without a ``none`` edge (an edge repeats once
        per path through it): pools give a constant 1/9 block ``[C, 3, 3]`` and their BN's
        weight and bias; a stride-1 skip gives ``eye(C)``, a stride-2 one its factorized
        reduce's two convolutions and BN; a sep conv its four convolutions then both BNs; a
        dil conv its two convolutions then its BN weight and bias (weight twice with
        ``space.angle_bias_slip``). Always present: the stem, every cell's two preprocessing
        layers, and the classifier weight (no bias, as the CIFAR code). ``None`` when no path
        survives, which the two-inputs rule never allows.
        """
        layers = self.space.layers
        reductions = reduction_cells(layers)
        segs: list[torch.Tensor] = []
        for c in range(layers):
            half = cell_half(arch.genes, c in reductions)
            for edges in _PATH_EDGES:
                if any(half[e] == 0 for e, _ in edges):
                    continue
                for e, inp in edges:
                    prefix = f"cells.{c}.edges.{e}.{half[e]}."
                    segs += self._op_segments(
                        state, prefix, OPS[half[e]], c in reductions and inp < 2
                    )
        if not segs:
            return None
        extra = [state["stem.0.weight"], state["stem.1.weight"], state["stem.1.bias"]]
        for c in range(layers):
            for pre in ("preprocess0", "preprocess1"):
                p = f"cells.{c}.{pre}."
                names = (
                    ("conv_1.weight", "conv_2.weight", "bn.weight", "bn.bias")
                    if p + "conv_1.weight" in state
                    else ("op.1.weight", "op.2.weight", "op.2.bias")
                )
                extra += [state[p + n] for n in names]
        extra.append(state["classifier.weight"])
        return torch.cat([s.detach().float().reshape(-1).cpu() for s in extra + segs])

    def _op_segments(
        self, state: Mapping[str, torch.Tensor], p: str, op: str, stride2: bool
    ) -> list[torch.Tensor]:
        if op in ("max_pool_3x3", "avg_pool_3x3"):
            c = state[p + "bn.weight"].shape[0]
            return [torch.full((c, 3, 3), 1.0 / 9.0), state[p + "bn.weight"], state[p + "bn.bias"]]
        if op == "skip_connect" and stride2:
            return [
                state[p + n] for n in ("conv_1.weight", "conv_2.weight", "bn.weight", "bn.bias")
            ]
        if op == "skip_connect":
            # the cell's channel count, read off a conv every cell has
            c = state[p.rsplit(".edges.", 1)[0] + ".preprocess1.op.1.weight"].shape[0]
            return [torch.eye(c)]
        if op.startswith("sep_conv"):
            convs = ("op.1.weight", "op.2.weight", "op.5.weight", "op.6.weight")
            bns = ("op.3.weight", "op.3.bias", "op.7.weight", "op.7.bias")
            return [state[p + n] for n in convs + bns]
        bias = "op.3.weight" if self.space.angle_bias_slip else "op.3.bias"
        return [state[p + n] for n in ("op.1.weight", "op.2.weight", "op.3.weight", bias)]
