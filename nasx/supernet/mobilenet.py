"""The RLNAS MobileNet supernet: the six MBConvs of every choice layer, skip where allowed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from nasx.search_space._mobilenet_net import (
    BLOCKS,
    FIXED_LAYERS,
    SKIP,
    MobileNetBackbone,
    MobileNetNetwork,
    build_block,
    init_weights,
    layer_plan,
)
from nasx.search_space.base import Architecture
from nasx.search_space.mobilenet import MobileNetSpace
from nasx.supernet.base import Supernet, register_supernet

#: MBConv ``conv`` entries in the angle vector (RLNAS ``test_server.py:79-115``): pw conv,
#: BN1 weight and bias, dw conv, BN2 weight and bias, pw-linear conv (the last BN is left out)
_ANGLE_KEYS: tuple[str, ...] = (
    "conv.0.weight",
    "conv.1.weight",
    "conv.1.bias",
    "conv.3.weight",
    "conv.4.weight",
    "conv.4.bias",
    "conv.6.weight",
)


class ChoiceLayer(nn.Module):
    """One choice layer: the six MBConvs of `BLOCKS` in ``ops``; op -1 (skip) returns the input.

    Args:
        inp: input channels.
        oup: output channels.
        stride: stride of every MBConv.
    """

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        self.inp, self.oup, self.stride = inp, oup, stride
        self.ops = nn.ModuleList(build_block(op, inp, oup, stride) for op in range(len(BLOCKS)))

    def forward(self, x: torch.Tensor, op: int) -> torch.Tensor:
        """Run reference op ``op`` (-1: skip, only where ``inp == oup`` and stride 1)."""
        return x if op == SKIP else self.ops[op](x)


@register_supernet(MobileNetSpace)
class MobileNetSupernet(MobileNetBackbone, Supernet):
    """Stem, fixed MBConv, 21 `ChoiceLayer`s, head; ``forward(x, path)`` runs 21 reference ops.

    A path is a tuple of reference op indices (-1 skip, 0..5 `BLOCKS`), one per layer: the
    same architecture in every layer of one step, as RLNAS's SPOS training samples.
    """

    space: MobileNetSpace
    has_path_weights = True

    def __init__(self, space: MobileNetSpace) -> None:
        super().__init__(space.num_classes, space.in_channels, space.width_mult, dropout=0.0)
        self.space = space
        for inp, oup, s in layer_plan(space.width_mult):
            self.features.append(ChoiceLayer(inp, oup, s))
        init_weights(self)
        #: each layer's options in RLNAS's order: ops 0..5, then -1 where skip is allowed
        #: (``train.py:114-117``)
        self.options: tuple[tuple[int, ...], ...] = tuple(
            tuple(range(len(BLOCKS))) + (() if i in FIXED_LAYERS else (SKIP,))
            for i in range(len(self.features))
        )

    def forward(self, x: torch.Tensor, path: Sequence[int]) -> torch.Tensor:
        """Logits of the sub-network of ``path`` (21 reference ops)."""
        x = self.fixed_block(self.stem(x))
        for layer, op in zip(self.features, path, strict=True):
            x = layer(x, op)
        return self._head(x)

    def sample_path(self, rng: np.random.Generator) -> tuple[int, ...]:
        """Uniform per layer over its options: ``options[rng.integers(len(options))]``.

        This is RLNAS's ``train.py:174-178`` with ``np.random.randint`` replaced by ``rng``.
        """
        return tuple(opts[int(rng.integers(len(opts)))] for opts in self.options)

    def path_of(self, arch: Architecture) -> tuple[int, ...]:
        return self.space.ops(arch)

    def extract(self, arch: Architecture) -> MobileNetNetwork:
        sp = self.space
        ops = self.path_of(arch)
        net = MobileNetNetwork(ops, sp.num_classes, sp.in_channels, sp.width_mult, sp.dropout)
        state: dict[str, torch.Tensor] = {}
        for key, value in self.state_dict().items():
            parts = key.split(".")
            if parts[0] == "features":
                # features.<i>.ops.<op>.<rest> -> features.<i>.<rest> for the chosen op only
                if int(parts[3]) != ops[int(parts[1])]:
                    continue
                key = ".".join(parts[:2] + parts[4:])
            state[key] = value.detach().clone()
        net.load_state_dict(state)
        return net.to(self.device)

    def path_weights(self, state: Mapping[str, torch.Tensor], arch: Architecture) -> torch.Tensor:
        """RLNAS's MobileNet angle vector (``evolution_search/test_server.py:79-115``).

        Order, as RLNAS concatenates it: the fixed segments first, i.e. the stem conv weight,
        the fixed MBConv's dw and pw conv weights, the head conv1x1 weight and the classifier
        weight (no bias); then per layer in order, for an MBConv its pw conv weight, BN1
        weight and bias, dw conv weight, BN2 weight and bias and pw-linear conv weight (its
        last BN left out), and for a skip ``eye(out, in)`` flattened. The cosine, hence the
        angle, does not depend on the order as long as both vectors share it.
        """
        segs = [
            state["stem.0.weight"],
            state["fixed_block.conv.0.weight"],
            state["fixed_block.conv.3.weight"],
            state["head.0.weight"],
            state["classifier.weight"],
        ]
        plan = layer_plan(self.space.width_mult)
        for i, (op, (inp, oup, _)) in enumerate(zip(self.path_of(arch), plan, strict=True)):
            if op == SKIP:
                segs.append(torch.eye(oup, inp))
            else:
                segs += [state[f"features.{i}.ops.{op}.{k}"] for k in _ANGLE_KEYS]
        return torch.cat([s.detach().float().reshape(-1).cpu() for s in segs])
