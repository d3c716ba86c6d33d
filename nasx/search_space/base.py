"""The search-space contract: architectures as immutable values, and the space that builds them."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Architecture:
    """An immutable architecture: an integer gene per decision.

    The genes are pymoo's ``X`` row; `SearchSpace.to_str` / `SearchSpace.parse` give the
    canonical string used in logs, archives and file names.
    """

    genes: tuple[int, ...]

    def encode(self) -> np.ndarray:
        """The integer encoding as a numpy vector."""
        return np.asarray(self.genes, dtype=np.int64)


class SearchSpace(ABC):
    """A family of architectures: the encoding, and the stand-alone network of each member.

    Subclasses define the genes' bounds, the canonical string form and `build_network`.
    Sampling, mutation and crossover on the integer encoding are generic; `_repair` lets a
    space enforce validity after each of them. The weight-sharing network that holds every
    member is not the space's business: it is a `nasx.supernet.Supernet` registered for the
    space's type (`nasx.supernet.build_supernet`).
    """

    #: inclusive lower and upper bound of every gene
    lower: np.ndarray
    upper: np.ndarray
    #: (channels, height, width) of one input image
    input_shape: tuple[int, int, int]

    @property
    def n_var(self) -> int:
        """Number of genes."""
        return len(self.lower)

    # --- values --------------------------------------------------------------------------
    def decode(self, x: Sequence[int] | np.ndarray) -> Architecture:
        """Architecture from an integer vector (rounded and clipped to the bounds)."""
        arr = np.clip(np.rint(np.asarray(x, dtype=float)), self.lower, self.upper).astype(int)
        return self._repair(Architecture(tuple(int(v) for v in arr)), None)

    @abstractmethod
    def to_str(self, arch: Architecture) -> str:
        """Canonical string of ``arch``."""

    def parse(self, text: str) -> Architecture:
        """Inverse of `to_str`, plus published names and the space's other stored forms.

        A key of `named_architectures` is looked up first; anything else goes to `_parse`.
        Raises `nasx.errors.NasxError` naming the expected form.
        """
        named = self.named_architectures()
        key = text.strip()
        if key in named:
            return self._parse(named[key])
        return self._parse(text)

    @abstractmethod
    def _parse(self, text: str) -> Architecture:
        """Parse the canonical string or another stored form of the space (not a name)."""

    def named_architectures(self) -> dict[str, str]:
        """Published architectures accepted by name wherever an architecture is (name -> text).

        The text is any form `_parse` reads; the default has none.
        """
        return {}

    def sample(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random architecture."""
        genes = rng.integers(self.lower, self.upper + 1)
        return self._repair(Architecture(tuple(int(g) for g in genes)), rng)

    def mutation_choices(self, gene: int) -> np.ndarray:
        """Values a mutation may draw for ``gene`` (all values by default)."""
        return np.arange(self.lower[gene], self.upper[gene] + 1)

    def mutate(self, arch: Architecture, rng: np.random.Generator, prob: float) -> Architecture:
        """Re-draw each gene with probability ``prob`` from `mutation_choices`."""
        genes = list(arch.genes)
        for i in range(len(genes)):
            if rng.random() < prob:
                genes[i] = int(rng.choice(self.mutation_choices(i)))
        return self._repair(Architecture(tuple(genes)), rng)

    def crossover(self, a: Architecture, b: Architecture, rng: np.random.Generator) -> Architecture:
        """Uniform crossover: each gene from either parent with probability 1/2."""
        pick = rng.random(len(a.genes)) < 0.5
        genes = tuple(x if p else y for x, y, p in zip(a.genes, b.genes, pick, strict=True))
        return self._repair(Architecture(genes), rng)

    def _repair(self, arch: Architecture, rng: np.random.Generator | None) -> Architecture:
        """Make ``arch`` valid (identity by default).

        ``rng`` is the caller's generator (sampling, mutation, crossover); `decode` passes
        ``None``, and a space whose repair is random must then derive its draws from the genes
        alone, so that decoding stays a pure function.
        """
        return arch

    # --- networks ------------------------------------------------------------------------
    @abstractmethod
    def build_network(self, arch: Architecture) -> nn.Module:
        """A freshly initialised stand-alone network in its training form (for costs/retrain)."""

    def build_retrain_network(self, arch: Architecture, auxiliary: bool = False) -> nn.Module:
        """A freshly initialised stand-alone network to retrain (the retrain stage's).

        ``auxiliary`` asks for an auxiliary classifier where the space's network has one
        (DARTS); the default is `build_network`, and a retraining recipe warns when its
        auxiliary loss finds no auxiliary output.
        """
        return self.build_network(arch)

    def build_search_network(self, arch: Architecture) -> nn.Module:
        """A freshly initialised stand-alone network for the search's own inputs.

        Training-free proxies score it on a batch of `input_shape` images. The default is
        `build_network`; a space whose cost network has another form (DARTS's ImageNet
        network) returns the network of its supernet's size here.
        """
        return self.build_network(arch)

    def input_shape_of(self, arch: Architecture) -> tuple[int, int, int]:
        """(channels, height, width) at which ``arch``'s network is costed and evaluated.

        The default is `network_input_shape` for every architecture; a space with a resolution
        gene (OFA MobileNetV3) returns the architecture's own resolution, and the costs, the
        profile and the metric context follow it.
        """
        return self.network_input_shape

    @property
    def network_input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) at which `build_network`'s network is costed.

        The default is the search input; DARTS can cost its ImageNet-form network at 224.
        """
        return self.input_shape

    def ground_truth(self, arch: Architecture) -> dict[str, float]:
        """Tabulated ground-truth values for ``arch`` (empty when the space has no table)."""
        return {}

    def enumerate(self) -> list[Architecture] | None:
        """Every architecture of the space, in a fixed order (``None``: not enumerable)."""
        return None

    def extremes(self) -> list[Architecture]:
        """Architectures at the ends of the cost range, distinct and in a fixed order.

        Feasibility checks and LUT builders start from these. The default is the all-lower and
        the all-upper gene vector; spaces add what else is extreme in them (NB201: every cell
        made of one operation, since all-``none`` is the cheapest).
        """
        out: list[Architecture] = []
        for genes in (self.lower, self.upper):
            arch = self.decode(genes)
            if arch not in out:
                out.append(arch)
        return out

    def latency_keys(self, arch: Architecture) -> list[str] | None:
        """One latency-LUT key per layer of ``arch``'s network (``None``: not supported).

        Keys follow OFA/NSGANetV2's ``<ltype>-input:HxWxC-output:HxWxC`` form (``input:<in>-
        output:<out>`` for linear layers) and are equal for equal layers, so a LUT holds each
        distinct layer once; a layer used k times appears k times in the list. The predicted
        latency is the sum of the listed keys' means (`nasx.objective.LatencyObjective`).
        """
        return None

    def latency_layer(self, key: str) -> tuple[nn.Module, tuple[int, ...]] | None:
        """A freshly initialised module for a `latency_keys` key, and its one-sample input shape.

        `nasx.objective.measure_lut` times these modules to build a LUT; ``None`` means the
        space has no latency layers.
        """
        return None

    def reference_files(self, arch: Architecture) -> dict[str, Any]:
        """Extra JSON files, in a seed's own format, written beside each selected architecture.

        Name -> JSON-able content (NSGANetV2's ``net.subnet`` and ``net.config`` for the OFA
        space); the default writes none.
        """
        return {}

    #: names under which the selected architecture's inherited weights are saved
    #: (``{"state_dict": ...}``); a space adds its seed's name (NSGANetV2: ``net.inherited``)
    weights_files: tuple[str, ...] = ("weights.pt",)

    def describe(self) -> dict[str, Any]:
        """Plain-data description written next to each selected architecture."""
        return {"space": type(self).__name__}


def parse_gene_tuple(text: str, n_genes: int) -> tuple[int, ...] | None:
    """The genes of ``text`` written as ``n_genes`` integers, as the seeds store candidates.

    Brackets, commas, spaces and ``|`` separate them (``(3, 1, 0)``, ``[3,1,0]``, ``3 1 0``);
    ``None`` when ``text`` is not such a tuple. The caller checks the value range.
    """
    tokens = [t for t in re.split(r"[\s,()\[\]|]+", text) if t]
    if len(tokens) != n_genes or not all(t.isdigit() for t in tokens):
        return None
    return tuple(int(t) for t in tokens)


def pick_ops_state(
    state: Mapping[str, torch.Tensor], chosen: Callable[[str, str], str]
) -> dict[str, torch.Tensor]:
    """The state dict of one path through a cell supernet.

    Supernet keys ``cells.<c>.edges.<e>.<k>.<rest>`` become ``cells.<c>.edges.<e>.<rest>``
    when ``k == chosen(c, e)`` and are dropped otherwise; every other key is kept. Tensors are
    copied, so the extracted network does not alias the supernet.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if len(parts) > 4 and parts[0] == "cells" and parts[2] == "edges":
            if chosen(parts[1], parts[3]) != parts[4]:
                continue
            key = ".".join(parts[:4] + parts[5:])
        out[key] = value.detach().clone()
    return out


def parse_latency_key(key: str) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """``(layer type, input shape, output shape)`` of a latency key.

    Shapes are ``(C, H, W)``, or ``(F,)`` for a linear layer's features.

    Raises:
        ValueError: ``key`` is not ``<ltype>-input:HxWxC-output:HxWxC`` (or ``input:F``).
    """
    parts = key.split("-")
    if len(parts) < 3 or not parts[-2].startswith("input:") or not parts[-1].startswith("output:"):
        raise ValueError(f"latency key {key!r} is not <ltype>-input:HxWxC-output:HxWxC")

    def shape(text: str) -> tuple[int, ...]:
        dims = tuple(int(d) for d in text.split("x"))
        return (dims[2], dims[0], dims[1]) if len(dims) == 3 else dims

    ltype = "-".join(parts[:-2])
    return ltype, shape(parts[-2][len("input:") :]), shape(parts[-1][len("output:") :])
