"""NAS-Bench-201: 5 operations on the 6 edges of a 4-node cell (15,625 cells)."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from nasx.errors import NasxError
from nasx.search_space._nb201_net import (
    EDGES,
    OPS,
    NB201Network,
    ResNetBasicBlock,
    build_op,
    stage_channels,
)
from nasx.search_space._nb201_table import load_table
from nasx.search_space.base import (
    Architecture,
    SearchSpace,
    parse_gene_tuple,
    parse_latency_key,
)


class NB201Space(SearchSpace):
    """The NAS-Bench-201 cell space with RLNAS's SPOS supernet.

    Args:
        num_classes: classifier outputs (set from the dataset).
        channels: channels of the first stage (16 in NB201).
        cells_per_stage: search cells per stage, N (5 in NB201).
        image_size: input height and width the network is built for (32 in NB201).
        in_channels: input image channels.
        mutate_to_none: whether mutation may draw ``none``; RLNAS's evolution never does
            (``False``, the original behaviour), random sampling always may.
    """

    def __init__(
        self,
        num_classes: int = 10,
        channels: int = 16,
        cells_per_stage: int = 5,
        image_size: int = 32,
        in_channels: int = 3,
        mutate_to_none: bool = False,
    ) -> None:
        for name, v in (
            ("channels", channels),
            ("cells_per_stage", cells_per_stage),
            ("image_size", image_size),
            ("num_classes", num_classes),
        ):
            if v < 1:
                raise ValueError(f"space.{name} must be >= 1, got {v}")
        self.num_classes = num_classes
        self.channels = channels
        self.cells_per_stage = cells_per_stage
        self.in_channels = in_channels
        self.mutate_to_none = mutate_to_none
        self.input_shape = (in_channels, image_size, image_size)
        self.lower = np.zeros(len(EDGES), dtype=int)
        self.upper = np.full(len(EDGES), len(OPS) - 1, dtype=int)

    # --- values --------------------------------------------------------------------------
    def to_str(self, arch: Architecture) -> str:
        ops = [f"{OPS[k]}~{j}" for (_, j), k in zip(EDGES, arch.genes, strict=True)]
        return f"|{ops[0]}|+|{ops[1]}|{ops[2]}|+|{ops[3]}|{ops[4]}|{ops[5]}|"

    def _parse(self, text: str) -> Architecture:
        """The NB201 string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` or RLNAS's 6-integer tuple.

        RLNAS stores a candidate as six op indices in edge order (1<-0), (2<-0), (2<-1),
        (3<-0), (3<-1), (3<-2) with NB201's op order, e.g. ``(3, 3, 0, 1, 2, 3)``; brackets and
        commas are optional.
        """
        hint = (
            "expected the NB201 form |op~0|+|op~0|op~1|+|op~0|op~1|op~2| with op in "
            + ", ".join(OPS)
            + f", or RLNAS's tuple of {len(EDGES)} op indices 0..{len(OPS) - 1}"
        )
        body = text.strip()
        if body[:1] in "([" or body[:1].isdigit():
            genes_t = parse_gene_tuple(body, len(EDGES))
            if genes_t is None or max(genes_t) >= len(OPS):
                raise NasxError(f"cannot parse architecture {text!r}: {hint}")
            return Architecture(genes_t)
        nodes = body.split("+")
        if len(nodes) != 3:
            raise NasxError(f"cannot parse architecture {text!r}: {hint}")
        genes: list[int] = []
        for i, node in enumerate(nodes, start=1):
            if len(node) < 2 or not node.startswith("|") or not node.endswith("|"):
                raise NasxError(f"cannot parse architecture {text!r}: {hint}")
            parts = node[1:-1].split("|")
            if len(parts) != i:
                raise NasxError(f"cannot parse architecture {text!r}: {hint}")
            for j, part in enumerate(parts):
                op, _, src = part.partition("~")
                if op not in OPS or src != str(j):
                    raise NasxError(f"cannot parse architecture {text!r} at {part!r}: {hint}")
                genes.append(OPS.index(op))
        return Architecture(tuple(genes))

    def mutation_choices(self, gene: int) -> np.ndarray:
        return np.arange(0 if self.mutate_to_none else 1, len(OPS))

    def index(self, arch: Architecture) -> int:
        """The NAS-Bench-201 index of ``arch`` (row of the packaged table)."""
        return load_table()[0][self.to_str(arch)]

    def ground_truth(self, arch: Architecture) -> dict[str, float]:
        index, rows = load_table()
        return dict(rows[index[self.to_str(arch)]])

    def enumerate(self) -> list[Architecture]:
        """All 15,625 cells in NAS-Bench-201 index order (the packaged table's rows)."""
        index, _ = load_table()
        return [self.parse(text) for text in sorted(index, key=index.__getitem__)]

    def extremes(self) -> list[Architecture]:
        """The all-lower/all-upper cells plus every single-operation cell (all-``none`` first)."""
        out = super().extremes()
        for k in range(len(OPS)):
            arch = Architecture((k,) * len(EDGES))
            if arch not in out:
                out.append(arch)
        return out

    def latency_keys(self, arch: Architecture) -> list[str]:
        """LUT keys of the stand-alone network, in execution order.

        ``stem-input:SxSx3-output:SxSxC``; per search cell one ``<op>-input:HxWxC-output:HxWxC``
        per edge whose op is not ``none`` (a ``none`` edge runs nothing); ``resblock-input:..-
        output:..`` per stride-2 residual block; ``head-input:HxWx4C-output:1x1x4C`` (last BN,
        ReLU and global pooling) and ``classifier-input:4C-output:<classes>``. The additions
        that join a cell's edges are not in the LUT (as in OFA's LUT, glue is not timed).
        """
        c, size = self.channels, self.input_shape[1]
        keys = [f"stem-input:{size}x{size}x{self.in_channels}-output:{size}x{size}x{c}"]
        c_prev = c
        for c_out, red in stage_channels(c, self.cells_per_stage):
            if red:
                half = (size + 1) // 2  # stride-2, padding-1 3x3 convolution
                keys.append(f"resblock-input:{size}x{size}x{c_prev}-output:{half}x{half}x{c_out}")
                size = half
            else:
                shape = f"{size}x{size}x{c_out}"
                keys.extend(f"{OPS[k]}-input:{shape}-output:{shape}" for k in arch.genes if k != 0)
            c_prev = c_out
        keys.append(f"head-input:{size}x{size}x{c_prev}-output:1x1x{c_prev}")
        keys.append(f"classifier-input:{c_prev}-output:{self.num_classes}")
        return keys

    def latency_layer(self, key: str) -> tuple[nn.Module, tuple[int, ...]]:
        """The module behind one of `latency_keys`' keys (the ``affine=True`` network's)."""
        ltype, c_in, c_out = parse_latency_key(key)
        module: nn.Module
        if ltype == "stem":
            module = nn.Sequential(
                nn.Conv2d(c_in[0], c_out[0], 3, padding=1, bias=False), nn.BatchNorm2d(c_out[0])
            )
        elif ltype == "resblock":
            module = ResNetBasicBlock(c_in[0], c_out[0])
        elif ltype == "head":
            module = nn.Sequential(
                nn.BatchNorm2d(c_in[0]),
                nn.ReLU(inplace=True),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            )
        elif ltype == "classifier":
            module = nn.Linear(c_in[0], c_out[0])
        elif ltype in OPS[1:]:
            module = build_op(ltype, c_in[0], affine=True)
        else:
            raise NasxError(f"latency key {key!r} names no NAS-Bench-201 layer")
        return module, (1, *c_in)

    # --- networks ------------------------------------------------------------------------
    def build_network(self, arch: Architecture) -> NB201Network:
        return NB201Network(
            arch.genes,
            self.channels,
            self.cells_per_stage,
            self.in_channels,
            self.num_classes,
            affine=True,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "space": "nb201",
            "channels": self.channels,
            "cells_per_stage": self.cells_per_stage,
            "image_size": self.input_shape[1],
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
        }
