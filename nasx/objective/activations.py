"""Activations: output elements of the layers of one forward pass (CNAS's tiny-ML measure)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nasx.objective.base import Objective
from nasx.search_space.base import Architecture, SearchSpace

#: the layer types whose outputs CNAS counts (``utils.py``); BN outputs count in addition to
#: the conv outputs they follow; activation functions, adaptive pooling and additions do not
COUNTED_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv2d,
    nn.Flatten,
    nn.Linear,
    nn.BatchNorm2d,
    nn.AvgPool2d,
    nn.MaxPool2d,
)


def count_activations(net: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Summed output numel of every leaf `COUNTED_LAYERS` module in one forward pass.

    One ``1 x *input_shape`` input, in eval mode, without gradients; a module called twice is
    counted twice. ``net``'s train/eval mode is restored afterwards. The unit is elements, not
    bytes.
    """
    total = 0

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    handles = [
        m.register_forward_hook(hook)
        for m in net.modules()
        if isinstance(m, COUNTED_LAYERS) and next(m.children(), None) is None
    ]
    param = next(net.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
        net.train(training)
    return total


class ActivationsObjective(Objective):
    """Activations of the stand-alone network at the space's input size, in millions.

    CNAS's definition: the output elements of every Conv2d, Flatten, Linear, BatchNorm2d,
    AvgPool2d and MaxPool2d layer for one input image (`count_activations`), divided by 1e6.

    Args:
        round_to: decimals to round the value to; CNAS stores 2 (``round_to=2``), ``None``
            keeps the exact value (the default, so that close networks stay distinguishable).
        upper, lower, handling, penalty: bounds, see `nasx.objective.base.Objective`.
    """

    name = "activations"

    def __init__(
        self,
        round_to: int | None = None,
        upper: float | None = None,
        lower: float | None = None,
        handling: str = "constraint",
        penalty: float = 1e10,
    ) -> None:
        super().__init__(upper=upper, lower=lower, handling=handling, penalty=penalty)
        if round_to is not None and round_to < 0:
            raise ValueError(f"activations: round_to={round_to} must be >= 0 or null")
        self.round_to = round_to

    def _compute(self, arch: Architecture, space: SearchSpace) -> float:
        value = count_activations(space.build_network(arch), space.input_shape_of(arch)) / 1e6
        return value if self.round_to is None else round(value, self.round_to)
