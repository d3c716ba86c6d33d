"""Parameters and FLOPs of the stand-alone network, counted by PyTorch's own profiler."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from nasx.objective.base import Objective
from nasx.search_space.base import Architecture, SearchSpace


class ParamsObjective(Objective):
    """Trainable parameters of the stand-alone network, in millions."""

    name = "params"

    def _compute(self, arch: Architecture, space: SearchSpace) -> float:
        net = space.build_network(arch)
        return sum(p.numel() for p in net.parameters() if p.requires_grad) / 1e6


class FlopsObjective(Objective):
    """Multiply-accumulates of one forward pass at the space's input size, in millions.

    Counted with ``torch.utils.flop_counter`` (which reports 2 FLOPs per MAC) and halved, the
    convention of NAS-Bench-201, thop and the papers ("FLOPs" meaning MACs).
    """

    name = "flops"

    def _compute(self, arch: Architecture, space: SearchSpace) -> float:
        net = space.build_network(arch).eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            net(torch.zeros(1, *space.input_shape))
        return counter.get_total_flops() / 2 / 1e6
