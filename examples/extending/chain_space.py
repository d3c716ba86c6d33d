"""A user search space: a chain of layers, each a 1x1/3x3/5x5 conv or a skip.

Two classes make a space: the encoding (`ChainSpace`, a `SearchSpace`) and its weight-sharing
network (`ChainSupernet`, a `Supernet` registered for the space with `register_supernet`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nasx.errors import NasxError
from nasx.search_space import Architecture, SearchSpace
from nasx.supernet import Supernet, register_supernet

OPS = ("skip", "conv1x1", "conv3x3", "conv5x5")


def _op(name: str, c: int) -> nn.Module:
    if name == "skip":
        return nn.Identity()
    k = int(name[-1])
    return nn.Sequential(
        nn.Conv2d(c, c, k, padding=k // 2, bias=False), nn.BatchNorm2d(c), nn.ReLU()
    )


class _Head(nn.Module):
    def __init__(self, in_ch: int, c: int, classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_ch, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()
        )
        self.classifier = nn.Linear(c, classes)

    def out(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x.mean((2, 3)))


class ChainNet(_Head):
    def __init__(self, genes: Sequence[int], in_ch: int, c: int, classes: int) -> None:
        super().__init__(in_ch, c, classes)
        self.layers = nn.ModuleList([_op(OPS[k], c) for k in genes])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.out(x)


class ChainSpace(SearchSpace):
    """``layers`` genes in 0..3; the canonical string is e.g. ``conv3x3-skip-conv5x5``."""

    def __init__(
        self,
        num_classes: int = 10,
        layers: int = 4,
        channels: int = 8,
        image_size: int = 16,
        in_channels: int = 3,
    ) -> None:
        self.num_classes, self.layers, self.channels = num_classes, layers, channels
        self.input_shape = (in_channels, image_size, image_size)
        self.lower = np.zeros(layers, dtype=int)
        self.upper = np.full(layers, len(OPS) - 1, dtype=int)

    def to_str(self, arch: Architecture) -> str:
        return "-".join(OPS[k] for k in arch.genes)

    def _parse(self, text: str) -> Architecture:
        parts = text.strip().split("-")
        if len(parts) != self.layers or any(p not in OPS for p in parts):
            raise NasxError(f"cannot parse {text!r}: expected {self.layers} of {OPS} joined by -")
        return Architecture(tuple(OPS.index(p) for p in parts))

    def build_network(self, arch: Architecture) -> ChainNet:
        return ChainNet(arch.genes, self.input_shape[0], self.channels, self.num_classes)

    def describe(self) -> dict[str, Any]:
        return {
            "space": "chain",
            "layers": self.layers,
            "channels": self.channels,
            "num_classes": self.num_classes,
        }


@register_supernet(ChainSpace)
class ChainSupernet(_Head, Supernet):
    """Every op in every layer; ``forward(x, path)`` runs one op per layer."""

    space: ChainSpace
    has_path_weights = True

    def __init__(self, space: ChainSpace) -> None:
        super().__init__(space.input_shape[0], space.channels, space.num_classes)
        self.space = space
        self.layers = nn.ModuleList(
            [nn.ModuleList([_op(n, space.channels) for n in OPS]) for _ in range(space.layers)]
        )

    def forward(self, x: torch.Tensor, path: Sequence[int]) -> torch.Tensor:
        x = self.stem(x)
        for layer, k in zip(self.layers, path, strict=True):
            x = layer[k](x)
        return self.out(x)

    def sample_path(self, rng: np.random.Generator) -> list[int]:
        return [int(k) for k in rng.integers(0, len(OPS), self.space.layers)]

    def path_of(self, arch: Architecture) -> list[int]:
        return list(arch.genes)

    def extract(self, arch: Architecture) -> ChainNet:
        net = self.space.build_network(arch)
        state = {}
        for key, value in self.state_dict().items():
            parts = key.split(".")
            if parts[0] == "layers":
                if int(parts[2]) != arch.genes[int(parts[1])]:
                    continue
                key = ".".join(parts[:2] + parts[3:])
            state[key] = value.clone()
        net.load_state_dict(state)
        return net.to(self.device)

    def path_weights(
        self, state: Mapping[str, torch.Tensor], arch: Architecture
    ) -> torch.Tensor | None:
        segs = [state["stem.0.weight"], state["classifier.weight"]]
        segs += [state[f"layers.{i}.{k}.0.weight"] for i, k in enumerate(arch.genes) if k > 0]
        return torch.cat([s.float().reshape(-1).cpu() for s in segs])
