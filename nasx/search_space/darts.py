"""The DARTS cell space of GeNAS and RLNAS: 8 operations on 14 edges, normal + reduction cell."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from nasx.errors import NasxError
from nasx.search_space import _darts_latency
from nasx.search_space._darts_net import (
    CELL_GENES,
    EDGES,
    DartsNetwork,
    cell_half,
)
from nasx.search_space._darts_ops import OPS, SHORT
from nasx.search_space.base import Architecture, SearchSpace, parse_gene_tuple


def gene_index(node: int, inp: int) -> int:
    """Gene of edge ``inp -> node`` within a cell: ``inp + sum(range(2, node))`` (GeNAS)."""
    return inp + sum(range(2, node))


_PAIR = re.compile(r"\(\s*['\"]?(\w+)['\"]?\s*,\s*(\d+)\s*\)")
_FORM = (
    "expected a DARTS genotype \"Genotype(normal=[('sep_conv_3x3', 0), ...8 pairs], "
    'normal_concat=[2, 3, 4, 5], reduce=[...8 pairs], reduce_concat=[2, 3, 4, 5])" '
    "or the 28 op indices of a GeNAS/RLNAS tuple"
)


#: published cells, accepted by name wherever an architecture is (`named_architectures`):
#: GeNAS ``genotypes.py:384-399`` and RLNAS (seed-genas-rlnas.md A.4, B.8) as 28-gene tuples,
#: DARTS V2 (Liu et al. 2019) as its genotype
NAMED: dict[str, str] = {
    "GENAS_FLATNESS_CIFAR10": "3 6 0 4 4 0 6 6 0 0 0 0 4 3 5 2 0 6 4 0 3 0 6 0 0 5 0 7",
    "GENAS_ANGLE_FLATNESS_CIFAR10": "5 4 4 4 0 4 5 0 0 4 0 0 0 4 7 7 2 3 0 4 1 0 0 0 0 0 5 6",
    "GENAS_FLATNESS_CIFAR100": "3 5 0 4 4 0 0 4 5 0 4 0 0 7 6 3 2 0 5 0 5 0 7 0 1 1 0 0",
    "GENAS_ANGLE_FLATNESS_CIFAR100": "3 5 1 4 0 0 4 0 4 0 4 0 0 5 6 4 0 7 2 1 3 0 0 0 4 0 0 7",
    "RLNAS_CIFAR10": "5 4 6 0 5 4 0 0 7 0 7 6 0 0 5 6 4 0 5 0 6 0 4 0 1 5 0 0",
    "RLNAS_IMAGENET_600M": "4 4 0 3 4 0 4 4 0 3 0 0 0 4 4 1 4 3 0 4 6 0 0 3 4 0 0 0",
    "RLNAS_IMAGENET": "4 4 0 4 4 4 5 0 0 4 4 0 0 0 4 4 5 0 4 5 0 5 0 0 0 4 0 4",
    "DARTS_V2": (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
        "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[2, 3, 4, 5])"
    ),
}


class DartsSpace(SearchSpace):
    """The DARTS space with GeNAS/RLNAS's SPOS supernet (CIFAR form, all BNs affine).

    A candidate is 28 genes, op indices 0..7 (none, max_pool_3x3, avg_pool_3x3, skip_connect,
    sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5): 14 for the normal cell, then 14
    for the reduction cell. Every node keeps exactly two non-``none`` inputs (``check_cand``),
    so each candidate is one DARTS genotype, and the canonical string is that genotype.

    Args:
        num_classes: classifier outputs (set from the dataset).
        channels: supernet C (16 in GeNAS/RLNAS).
        layers: supernet cells (8; reductions at cells 2 and 5).
        image_size: input height and width of the supernet (32 for CIFAR); a multiple of 4.
        in_channels: input image channels.
        net_stem: form of `build_network`'s stand-alone network, which the costs
            (``objective=flops`` ...) count: ``imagenet`` (GeNAS/RLNAS retrain the searched
            cell as NetworkImageNet) or ``cifar`` (NetworkCIFAR, DARTS's CIFAR evaluation).
        net_channels: C of the stand-alone network (GeNAS 44-52, RLNAS 46/48; DARTS CIFAR 36).
        net_layers: cells of the stand-alone network (14 ImageNet, 20 DARTS CIFAR).
        net_image_size: input size the stand-alone network is costed at (``None``: the
            supernet's; NetworkImageNet needs a multiple of 32, 224 as published).
        mutate_reduction: mutation re-draws genes of both cells (the intended behaviour).
            ``False`` reproduces GeNAS/RLNAS ``search.py``, whose mutation loop covers only the
            14 normal-cell genes, so the reduction cell changes only through crossover and
            the two-inputs repair.
        angle_bias_slip: in the angle vector, take each dil-conv BN's *weight* for its bias
            slot, as GeNAS/RLNAS ``cand_evaluator.py:484-491`` do by mistake; ``False`` uses
            the bias (the intended vector).
    """

    def __init__(
        self,
        num_classes: int = 10,
        channels: int = 16,
        layers: int = 8,
        image_size: int = 32,
        in_channels: int = 3,
        net_stem: str = "imagenet",
        net_channels: int = 48,
        net_layers: int = 14,
        net_image_size: int | None = 224,
        mutate_reduction: bool = True,
        angle_bias_slip: bool = False,
    ) -> None:
        for name, v in (
            ("num_classes", num_classes),
            ("in_channels", in_channels),
            ("channels", channels),
            ("net_channels", net_channels),
        ):
            if v < 1:
                raise ValueError(f"space.{name} must be >= 1, got {v}")
        for name, v in (("channels", channels), ("net_channels", net_channels)):
            if v % 2:
                raise ValueError(
                    f"space.{name} must be even (factorized reduce halves it), got {v}"
                )
        for name, v in (("layers", layers), ("net_layers", net_layers)):
            if v < 3:
                raise ValueError(f"space.{name} must be >= 3 (two reduction cells), got {v}")
        if image_size < 4 or image_size % 4:
            raise ValueError(f"space.image_size must be a positive multiple of 4, got {image_size}")
        if net_stem not in ("cifar", "imagenet"):
            raise ValueError(f"space.net_stem must be 'cifar' or 'imagenet', got {net_stem!r}")
        size = image_size if net_image_size is None else net_image_size
        step = 32 if net_stem == "imagenet" else 4
        if size < step or size % step:
            raise ValueError(
                f"space.net_image_size must be a positive multiple of {step} for the "
                f"{net_stem} network, got {size}"
            )
        self.num_classes, self.channels, self.layers = num_classes, channels, layers
        self.in_channels = in_channels
        self.net_stem, self.net_channels, self.net_layers = net_stem, net_channels, net_layers
        self.net_image_size = size
        self.mutate_reduction = mutate_reduction
        self.angle_bias_slip = angle_bias_slip
        self.input_shape = (in_channels, image_size, image_size)
        self.lower = np.zeros(2 * CELL_GENES, dtype=int)
        self.upper = np.full(2 * CELL_GENES, len(OPS) - 1, dtype=int)

    # --- values --------------------------------------------------------------------------
    def genotype(self, arch: Architecture) -> dict[str, list[tuple[str, int]]]:
        """``{"normal": [(op, input), ...], "reduce": [...]}``, two entries per node.

        Each node's two non-``none`` edges in input order (GeNAS ``parse_searched_cell``);
        inputs 0 and 1 are the previous cells, 2..5 the intermediate nodes.
        """
        out: dict[str, list[tuple[str, int]]] = {}
        for name, half in (
            ("normal", cell_half(arch.genes, False)),
            ("reduce", cell_half(arch.genes, True)),
        ):
            out[name] = [(OPS[half[e]], k) for e, (_, k) in enumerate(EDGES) if half[e] != 0]
        return out

    def to_str(self, arch: Architecture) -> str:
        g = self.genotype(arch)
        concat = list(range(2, 6))
        return (
            f"Genotype(normal={g['normal']!r}, normal_concat={concat!r}, "
            f"reduce={g['reduce']!r}, reduce_concat={concat!r})"
        )

    def _parse(self, text: str) -> Architecture:
        """A genotype string or a 28-integer GeNAS/RLNAS tuple such as ``(3, 6, 0, ...)``.

        Genotype strings are read as `to_str` writes them; short op names (``sep3``) pass.
        """
        body = text.strip()
        if "normal" not in body:
            return self._parse_tuple(body, text)
        found = re.search(r"normal\s*=\s*\[(.*?)\].*?reduce\s*=\s*\[(.*?)\]", body, re.S)
        if found is None:
            raise NasxError(f"cannot parse architecture {text!r}: {_FORM}")
        genes: list[int] = []
        for cell in found.groups():
            pairs = _PAIR.findall(cell)
            if len(pairs) != 8 or _PAIR.sub("", cell).strip(" ,\n\t"):
                raise NasxError(f"cannot parse architecture {text!r}: {_FORM}")
            genes += self._cell_genes(pairs, text)
        return Architecture(tuple(genes))

    def named_architectures(self) -> dict[str, str]:
        """GeNAS's four ``GENAS_*`` cells, RLNAS's three DARTS cells and ``DARTS_V2``."""
        return dict(NAMED)

    @staticmethod
    def _cell_genes(pairs: list[tuple[str, str]], text: str) -> list[int]:
        half = [0] * CELL_GENES
        for node in range(2, 6):
            seen: set[int] = set()
            for name, inp_text in pairs[2 * (node - 2) : 2 * (node - 1)]:
                op, inp = SHORT.get(name, name), int(inp_text)
                if op not in OPS or op == "none" or inp >= node or inp in seen:
                    raise NasxError(
                        f"cannot parse architecture {text!r} at ({name!r}, {inp}) for node "
                        f"{node}: each node takes two distinct inputs below {node} through "
                        f"one of {', '.join(OPS[1:])}"
                    )
                seen.add(inp)
                half[gene_index(node, inp)] = OPS.index(op)
        return half

    def _parse_tuple(self, body: str, text: str) -> Architecture:
        genes = parse_gene_tuple(body, 2 * CELL_GENES)
        if genes is None:
            raise NasxError(f"cannot parse architecture {text!r}: {_FORM}")
        if max(genes) >= len(OPS):
            raise NasxError(f"cannot parse architecture {text!r}: op indices are 0..{len(OPS) - 1}")
        arch = Architecture(genes)
        if self._repair(arch, None) != arch:
            raise NasxError(
                f"cannot parse architecture {text!r}: every node needs exactly two "
                "non-none inputs (2 of the 2, 3, 4, 5 genes of nodes 2..5 in each cell)"
            )
        return arch

    def mutate(self, arch: Architecture, rng: np.random.Generator, prob: float) -> Architecture:
        """Re-draw each gene uniformly from 0..7 with probability ``prob``.

        Genes of both cells, or of the normal cell only with ``mutate_reduction=False``.
        """
        genes = list(arch.genes)
        for i in range(len(genes) if self.mutate_reduction else CELL_GENES):
            if rng.random() < prob:
                genes[i] = int(rng.integers(0, len(OPS)))
        return self._repair(Architecture(tuple(genes)), rng)

    def _repair(self, arch: Architecture, rng: np.random.Generator | None) -> Architecture:
        """GeNAS/RLNAS ``check_cand`` on each cell: every node keeps two non-``none`` inputs.

        Extra inputs are set to ``none`` and missing ones re-drawn from ops 1..7, both at
        random. Without ``rng`` the draws come from a generator seeded by the genes.
        """
        genes = list(arch.genes)
        if rng is None:
            rng = np.random.default_rng(genes)
        for start in (0, CELL_GENES):
            for node in range(2, 6):
                idx = [start + gene_index(node, k) for k in range(node)]
                live = [i for i in idx if genes[i] != 0]
                dead = [i for i in idx if genes[i] == 0]
                if len(live) > 2:
                    for i in rng.choice(live, size=len(live) - 2, replace=False):
                        genes[int(i)] = 0
                elif len(live) < 2:
                    for i in rng.choice(dead, size=2 - len(live), replace=False):
                        genes[int(i)] = int(rng.integers(1, len(OPS)))
        return Architecture(tuple(genes))

    def extremes(self) -> list[Architecture]:
        """The repaired all-lower/all-upper vectors plus two single-op candidates per op.

        A single-op candidate uses one op on every edge it keeps, in both cells: once on
        inputs 0 and 1 of every node, once as a chain (node j on nodes j-2 and j-1). All
        max-pool is the cheapest, all sep5 the largest; between them every layer a latency
        LUT needs occurs.
        """
        out = super().extremes()
        for k in range(1, len(OPS)):
            # inputs 0 and 1 everywhere (stride-2 edges in a reduction cell), then a chain
            # j <- (j-2, j-1) (stride-1 edges of a reduction cell), so every layer occurs
            for inputs in ((0, 1), None):
                half = [k if inp in (inputs or (node - 2, node - 1)) else 0 for node, inp in EDGES]
                arch = Architecture(tuple(half + half))
                if arch not in out:
                    out.append(arch)
        return out

    def latency_keys(self, arch: Architecture) -> list[str]:
        """LUT keys of `build_network`'s network at `network_input_shape`, in execution order.

        ``stem`` (CIFAR form) or ``stem0`` + ``stem1`` (ImageNet form); per cell its two
        preprocessing layers (``relu_conv_bn``, ``factorized_reduce`` after a reduction) and
        one ``<op>`` key per non-``none`` edge, a stride-2 edge's output at half the size;
        ``gap`` and ``classifier``. The sums and the concatenation joining a cell are not
        timed (as OFA's LUT does not time glue).
        """
        return _darts_latency.latency_keys(
            arch.genes,
            self.net_stem,
            self.net_channels,
            self.net_layers,
            self.net_image_size,
            self.in_channels,
            self.num_classes,
        )

    def latency_layer(self, key: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
        return _darts_latency.latency_layer(key)

    # --- networks ------------------------------------------------------------------------
    def build_retrain_network(self, arch: Architecture, auxiliary: bool = False) -> DartsNetwork:
        """`build_network` with DARTS's auxiliary head when asked (not in the costs)."""
        return self._network(arch, auxiliary)

    def build_network(self, arch: Architecture) -> DartsNetwork:
        """The searched cell's evaluation network (``net_*`` settings), freshly initialised."""
        return self._network(arch, auxiliary=False)

    def _network(self, arch: Architecture, auxiliary: bool) -> DartsNetwork:
        return DartsNetwork(
            self.net_channels,
            self.net_layers,
            self.in_channels,
            self.num_classes,
            genes=arch.genes,
            stem=self.net_stem,
            pool_bn=False,
            auxiliary=auxiliary,
        )

    def build_search_network(self, arch: Architecture) -> DartsNetwork:
        """The candidate's DARTS network at the supernet's size (C, cells, CIFAR stem)."""
        return DartsNetwork(
            self.channels,
            self.layers,
            self.in_channels,
            self.num_classes,
            genes=arch.genes,
            pool_bn=False,
        )

    @property
    def network_input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.net_image_size, self.net_image_size)

    def describe(self) -> dict[str, Any]:
        return {
            "space": "darts",
            "channels": self.channels,
            "layers": self.layers,
            "image_size": self.input_shape[1],
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "net_stem": self.net_stem,
            "net_channels": self.net_channels,
            "net_layers": self.net_layers,
            "net_image_size": self.net_image_size,
        }
