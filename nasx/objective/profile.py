"""Parameters and FLOPs of the stand-alone network, counted by PyTorch's own profiler.

Both costs take the bound arguments of `nasx.objective.base.Objective` (``upper``, ``lower``,
``handling``, ``penalty``) and nothing else.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasx.objective.base import Objective
from nasx.search_space.base import Architecture, SearchSpace


def count_params(net: nn.Module) -> float:
    """Trainable parameters of ``net``, in millions."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad) / 1e6


def count_macs(net: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Multiply-accumulates of one eval-mode forward of a ``1 x *input_shape`` input, millions.

    Counted with ``torch.utils.flop_counter`` (which reports 2 FLOPs per MAC) and halved, the
    convention of NAS-Bench-201, thop and the papers ("FLOPs" meaning MACs). ``net`` is left
    in eval mode.
    """
    net.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(torch.zeros(1, *input_shape))
    return counter.get_total_flops() / 2 / 1e6


class ParamsObjective(Objective):
    """Trainable parameters of the stand-alone network, in millions."""

    name = "params"

    def _compute(self, arch: Architecture, space: SearchSpace) -> float:
        return count_params(space.build_network(arch))


class FlopsObjective(Objective):
    """Multiply-accumulates of one forward pass at the space's input size, in millions.

    See `count_macs` for the counting convention.
    """

    name = "flops"

    def _compute(self, arch: Architecture, space: SearchSpace) -> float:
        return count_macs(space.build_network(arch), space.input_shape_of(arch))
