"""Once-for-all MobileNetV3 space with resolution as a gene (NSGANetV2 / CNAS, reference §1).

The networks are MIT HAN Lab's own (``ofa`` package): `OFAMobileNetV3Space.build_network`
builds OFA's static ``MobileNetV3`` of a subnet, and the supernet
(`nasx.supernet.ofa_mbv3.OFAMobileNetV3Supernet`) is OFA's ``OFAMobileNetV3``, so OFA's
published checkpoints and NSGANetV2's files (``net.subnet``, ``net.config``) are used as is.
"""

from __future__ import annotations

import ast
import copy
import json
from collections.abc import Mapping, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
from ofa.imagenet_classification.networks import MobileNetV3
from torch import nn

from nasx.errors import NasxError
from nasx.search_space.base import Architecture, SearchSpace, parse_gene_tuple

#: depth-wise kernel sizes, expand ratios and stage depths of OFA's ``d234_e346_k357`` nets
KERNELS: tuple[int, ...] = (3, 5, 7)
EXPANDS: tuple[int, ...] = (3, 4, 6)
DEPTHS: tuple[int, ...] = (2, 3, 4)
#: searchable stages, and the layers each stage holds in the supernet
N_STAGES = 5
MAX_DEPTH = max(DEPTHS)
#: genes of one stage: depth index, MAX_DEPTH kernel indices, MAX_DEPTH expand indices
STAGE_GENES = 1 + 2 * MAX_DEPTH
#: subnet-file suffixes `_parse` treats as paths even when the file is missing
PATH_SUFFIXES = (".subnet", ".json")
#: a folder holding this file (NSGANetV2's / CNAS's post-search ``net-*`` folders) is read too
SUBNET_FILE = "net.subnet"


def pad_layers(values: Sequence[int], depths: Sequence[int]) -> list[int | None]:
    """Per-stage values padded with ``None`` to `MAX_DEPTH` layers per stage.

    ``values`` holds one entry per active layer (``sum(depths)``), as a subnet's ``ks``/``e``;
    the result holds one per supernet layer, the form OFA's ``set_active_subnet`` takes (as
    NSGANetV2's evaluator pads them).
    """
    out: list[int | None] = []
    start = 0
    for d in depths:
        out += [int(v) for v in values[start : start + d]] + [None] * (MAX_DEPTH - d)
        start += d
    return out


class OFAMobileNetV3Space(SearchSpace):
    """The OFA MobileNetV3 space of NSGANetV2 (MSuNAS) and CNAS (reference §1 and §6.6).

    Five searchable stages, each with a depth in {2, 3, 4} and, per active layer, a depth-wise
    kernel in {3, 5, 7} and an expand ratio in {3, 4, 6}; stem, first block, stage widths,
    strides, activations, SE placement and head are OFA's fixed ``OFAMobileNetV3`` ones. The
    input resolution is a gene with values ``range(lr, ur + 1, step)`` (NSGANetV2: 192..256
    step 4; CNAS: ``--lr/--ur/--rstep``).

    Encoding: NSGANetV2's integer vector. Per stage 9 genes, ``[depth idx, 4 kernel idx,
    4 expand idx]`` (indices into `DEPTHS`, `KERNELS`, `EXPANDS`), then one resolution index:
    46 genes. When ``lr == ur`` the resolution gene is absent (45 genes, CNAS's fixed-resolution
    form) and subnets carry no ``"r"``. Genes of layers beyond a stage's depth are not
    expressed; `_repair` sets them to 0, so every architecture has one canonical vector.

    The canonical string is the compact JSON of `subnet`, the content of NSGANetV2's
    ``net_<i>.subnet`` files (``{"ks": [...], "e": [...], "d": [...], "r": 224}``).

    Args:
        num_classes: classifier outputs (set from the dataset; 1000 for ImageNet).
        width_mult: OFA's width multiplier; 1.0 and 1.2 are OFA's published checkpoints
            (``ofa_mbv3_d234_e346_k357_w1.0`` / ``_w1.2``), other values give smaller
            variants of the same space (e.g. for a CPU).
        resolutions: ``(lr, ur, step)``: the resolution gene's values ``range(lr, ur + 1,
            step)``; ``ur - lr`` must be a multiple of ``step``. ``lr == ur``: no gene.
        in_channels: input image channels (OFA's checkpoints have 3).
        dropout: dropout before the classifier of `build_network` (NSGANetV2 retrains with
            0.2); the supernet has none.
        supernet_classes: outputs of the supernet's classifier when they differ from
            ``num_classes``: OFA's checkpoints are ImageNet's (1000). Extracted networks then
            keep the first ``num_classes`` rows of it, as CNAS's evaluator truncates them
            (NasSearchSpace ``ofa/evaluator.py``); NSGANetV2 resets it before fine-tuning
            (``metric=nsganetv2_accuracy``). ``None``: ``num_classes``.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        resolutions: Sequence[int] = (192, 256, 4),
        in_channels: int = 3,
        dropout: float = 0.0,
        supernet_classes: int | None = None,
    ) -> None:
        if supernet_classes is not None and supernet_classes < num_classes:
            raise ValueError(
                f"space.supernet_classes={supernet_classes} is below num_classes={num_classes}: "
                "the supernet's classifier must have at least as many outputs"
            )
        for name, v in (("num_classes", num_classes), ("in_channels", in_channels)):
            if v < 1:
                raise ValueError(f"space.{name} must be >= 1, got {v}")
        if not width_mult > 0:
            raise ValueError(f"space.width_mult must be > 0, got {width_mult}")
        if not 0 <= dropout < 1:
            raise ValueError(f"space.dropout must be in [0, 1), got {dropout}")
        if len(resolutions) != 3:
            raise ValueError(f"space.resolutions must be [lr, ur, step], got {list(resolutions)}")
        lr, ur, step = (int(v) for v in resolutions)
        if not (1 <= lr <= ur and step >= 1 and (ur - lr) % step == 0):
            raise ValueError(
                f"space.resolutions={[lr, ur, step]}: need 1 <= lr <= ur, step >= 1 and ur - lr "
                "a multiple of step (e.g. [192, 256, 4])"
            )
        self.num_classes, self.in_channels = int(num_classes), int(in_channels)
        self.supernet_classes = int(supernet_classes or num_classes)
        self.width_mult, self.dropout = float(width_mult), float(dropout)
        #: ``(lr, ur, step)`` as given
        self.resolutions: tuple[int, int, int] = (lr, ur, step)
        #: the resolution gene's values, ascending (one value: no gene)
        self.resolution_choices: tuple[int, ...] = tuple(range(lr, ur + 1, step))
        self.input_shape = (self.in_channels, ur, ur)
        n_var = N_STAGES * STAGE_GENES + int(self.has_resolution_gene)
        self.lower = np.zeros(n_var, dtype=int)
        self.upper = np.full(n_var, 2, dtype=int)
        if self.has_resolution_gene:
            self.upper[-1] = len(self.resolution_choices) - 1
        self._template: Any = None

    @property
    def has_resolution_gene(self) -> bool:
        """Whether the resolution is searched (``lr < ur``); else every subnet has ``lr``."""
        return len(self.resolution_choices) > 1

    def __getstate__(self) -> dict[str, Any]:
        """Pickled state without the cached OFA template (rebuilt lazily)."""
        state = self.__dict__.copy()
        state["_template"] = None
        return state

    # --- values --------------------------------------------------------------------------
    def subnet(self, arch: Architecture) -> dict[str, Any]:
        """NSGANetV2's subnet dict ``{"ks": [...], "e": [...], "d": [5 depths], "r": r}``.

        ``ks`` and ``e`` hold one value per active layer (``sum(d)`` each); ``"r"`` is present
        only when the space has a resolution gene (CNAS omits it for a fixed resolution).
        """
        g = arch.genes
        ks: list[int] = []
        es: list[int] = []
        ds: list[int] = []
        for s in range(N_STAGES):
            base = s * STAGE_GENES
            d = DEPTHS[g[base]]
            ds.append(d)
            ks += [KERNELS[i] for i in g[base + 1 : base + 1 + d]]
            es += [EXPANDS[i] for i in g[base + 1 + MAX_DEPTH : base + 1 + MAX_DEPTH + d]]
        out: dict[str, Any] = {"ks": ks, "e": es, "d": ds}
        if self.has_resolution_gene:
            out["r"] = self.resolution_choices[g[-1]]
        return out

    def from_subnet(self, subnet: Mapping[str, Any]) -> Architecture:
        """Architecture of a subnet dict (inverse of `subnet`).

        ``"r"`` is required when the space has a resolution gene; without one it may be left
        out or equal the fixed resolution.

        Raises:
            NasxError: ``subnet`` is not such a dict, or holds a value outside the space.
        """
        if not isinstance(subnet, Mapping):
            raise NasxError(f"cannot read subnet {subnet!r}: {self._form()}")
        keys = {"ks", "e", "d"} | ({"r"} if self.has_resolution_gene else set())
        missing = sorted(keys - set(subnet))
        extra = sorted(set(subnet) - keys - {"r"})
        if missing or extra:
            what = f"missing {missing}" if missing else f"unknown keys {extra}"
            raise NasxError(f"cannot read subnet {dict(subnet)!r} ({what}): {self._form()}")

        def ints(key: str) -> list[int]:
            value = subnet[key]
            if not isinstance(value, (Sequence, np.ndarray)) or isinstance(value, str):
                raise NasxError(f"subnet {key!r} must be a list of integers: {self._form()}")
            if not all(isinstance(v, Integral) and not isinstance(v, bool) for v in value):
                raise NasxError(f"subnet {key!r}={value!r} must hold integers: {self._form()}")
            return [int(v) for v in value]

        ds, ks, es = ints("d"), ints("ks"), ints("e")
        if len(ds) != N_STAGES or not set(ds) <= set(DEPTHS):
            raise NasxError(f"subnet d={ds}: need {N_STAGES} depths in {set(DEPTHS)}")
        n = sum(ds)
        for key, values, allowed in (("ks", ks, KERNELS), ("e", es, EXPANDS)):
            if len(values) != n or not set(values) <= set(allowed):
                raise NasxError(
                    f"subnet {key}={values}: need sum(d) = {n} values in {set(allowed)}"
                )
        r = subnet.get("r", self.resolution_choices[0])
        if not isinstance(r, Integral) or int(r) not in self.resolution_choices:
            raise NasxError(
                f"subnet r={r!r} is not a resolution of this space ({self._res_text()}): use "
                "one of them, or set space.resolutions to the run's [lr, ur, step]"
            )
        genes: list[int] = []
        start = 0
        for d in ds:
            pad = [0] * (MAX_DEPTH - d)
            genes.append(DEPTHS.index(d))
            genes += [KERNELS.index(k) for k in ks[start : start + d]] + pad
            genes += [EXPANDS.index(e) for e in es[start : start + d]] + pad
            start += d
        if self.has_resolution_gene:
            genes.append(self.resolution_choices.index(int(r)))
        return Architecture(tuple(genes))

    def resolution_of(self, arch: Architecture) -> int:
        """Input height and width of ``arch`` (``lr`` when the resolution is fixed)."""
        if self.has_resolution_gene:
            return self.resolution_choices[arch.genes[-1]]
        return self.resolution_choices[0]

    def to_str(self, arch: Architecture) -> str:
        """Compact JSON of `subnet`, e.g. ``{"ks":[3,5,...],"e":[4,6,...],"d":[2,...],"r":224}``."""
        return json.dumps(self.subnet(arch), separators=(",", ":"))

    def _parse(self, text: str) -> Architecture:
        """A subnet (JSON or Python dict), a file or folder holding one, or the gene vector.

        Accepted: `to_str`'s JSON (any spacing or key order; Python's ``{'ks': ...}`` repr
        too); the path of a JSON file holding a subnet dict (NSGANetV2's / CNAS's
        ``net_<i>.subnet``, ``net.subnet``), or of a folder holding a ``net.subnet``; and
        NSGANetV2's integer vector (46 genes, 45 without resolution gene; brackets, commas
        and spaces allowed), whose unexpressed genes may hold any valid index.
        """
        s = text.strip()
        if s.startswith("{"):
            return self.from_subnet(self._load_dict(s, text))
        genes = parse_gene_tuple(s, self.n_var)
        if genes is not None:
            for i, (g, hi) in enumerate(zip(genes, self.upper, strict=True)):
                if g > hi:
                    raise NasxError(
                        f"cannot parse architecture {text!r}: gene {i} is {g}, above its upper "
                        f"bound {hi}; {self._form()}"
                    )
            return self._repair(Architecture(genes), None)
        other = self.n_var - 1 if self.has_resolution_gene else self.n_var + 1
        if parse_gene_tuple(s, other) is not None:
            raise NasxError(
                f"cannot parse architecture {text!r}: {other} genes, but this space has "
                f"{self.n_var} ({self._res_text()}); {self._form()}"
            )
        path = Path(s).expanduser()
        if path.is_dir() and (path / SUBNET_FILE).is_file():
            path = path / SUBNET_FILE
        if path.is_file():
            try:
                content = path.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise NasxError(f"cannot read subnet file {path}: {exc}") from exc
            return self.from_subnet(self._load_dict(content.strip(), str(path)))
        if s.endswith(PATH_SUFFIXES) or "/" in s or "\\" in s:
            raise NasxError(
                f"subnet file {s} does not exist: point the path at an existing net_<i>.subnet "
                f"(JSON) file or a folder holding {SUBNET_FILE}"
            )
        raise NasxError(f"cannot parse architecture {text!r}: {self._form()}")

    def _load_dict(self, content: str, origin: str) -> Any:
        """The dict in ``content`` (JSON, else a Python literal), read from ``origin``."""
        try:
            return json.loads(content)
        except json.JSONDecodeError:
            pass
        try:
            return ast.literal_eval(content)
        except (ValueError, SyntaxError) as exc:
            raise NasxError(f"cannot parse subnet in {origin!r} ({exc}): {self._form()}") from exc

    def _res_text(self) -> str:
        lr, ur, step = self.resolutions
        if not self.has_resolution_gene:
            return f"fixed resolution {lr}, no resolution gene"
        return f"resolution gene over {lr}..{ur} step {step}"

    def _form(self) -> str:
        r = ', "r": R' if self.has_resolution_gene else ""
        return (
            f'expected an OFA MobileNetV3 subnet: JSON {{"ks": [...], "e": [...], "d": [...]{r}}} '
            f"with d = {N_STAGES} depths in {set(DEPTHS)}, ks and e = sum(d) kernels in "
            f"{set(KERNELS)} and expand ratios in {set(EXPANDS)}, {self._res_text()}; or the path "
            f"of a file holding it (NSGANetV2's net_<i>.subnet); or NSGANetV2's {self.n_var} "
            "gene indices"
        )

    def _repair(self, arch: Architecture, rng: np.random.Generator | None) -> Architecture:
        """Set the genes of layers beyond each stage's depth to 0 (one vector per network)."""
        genes = list(arch.genes)
        for s in range(N_STAGES):
            base = s * STAGE_GENES
            d = DEPTHS[genes[base]]
            for j in range(d, MAX_DEPTH):
                genes[base + 1 + j] = 0
                genes[base + 1 + MAX_DEPTH + j] = 0
        return Architecture(tuple(genes))

    def extremes(self) -> list[Architecture]:
        """The smallest (d 2, k 3, e 3, lowest r) and the largest (d 4, k 7, e 6, highest r).

        NSGANetV2's DOE starts from these two (``OFASearchSpace.initialize``).
        """
        return [self.decode(self.lower), self.decode(self.upper)]

    # --- networks ------------------------------------------------------------------------
    def input_shape_of(self, arch: Architecture) -> tuple[int, int, int]:
        """``(in_channels, r, r)``: the network is costed and evaluated at its own resolution."""
        r = self.resolution_of(arch)
        return (self.in_channels, r, r)

    def _active_config(self, arch: Architecture) -> dict[str, Any]:
        """OFA's ``get_active_net_config`` of ``arch`` (a fresh dict).

        Read from an ``OFAMobileNetV3`` template built once per space on the meta device (no
        memory, no draws from the global torch RNG).
        """
        if self._template is None:
            with torch.device("meta"):
                self._template = OFAMobileNetV3(
                    n_classes=self.num_classes,
                    dropout_rate=self.dropout,
                    width_mult=self.width_mult,
                    ks_list=list(KERNELS),
                    expand_ratio_list=list(EXPANDS),
                    depth_list=list(DEPTHS),
                )
        sub = self.subnet(arch)
        self._template.set_active_subnet(
            ks=pad_layers(sub["ks"], sub["d"]), e=pad_layers(sub["e"], sub["d"]), d=sub["d"]
        )
        config: dict[str, Any] = copy.deepcopy(self._template.get_active_net_config())
        config["first_conv"]["in_channels"] = self.in_channels
        return config

    def build_network(self, arch: Architecture) -> nn.Module:
        """OFA's static ``MobileNetV3`` of ``arch``, freshly initialised (PyTorch's defaults).

        Its layers, and hence its state-dict keys, are those of ``get_active_subnet`` on OFA's
        supernet, so NSGANetV2's ``net.inherited`` weights load into it.
        """
        net: nn.Module = MobileNetV3.build_from_config(self._active_config(arch))
        return net

    def net_config(self, arch: Architecture) -> dict[str, Any]:
        """OFA's ``.config`` of ``arch``'s network: NSGANetV2's ``net.config`` (JSON-ready).

        ``MobileNetV3.build_from_config`` rebuilds the network from (a copy of) it.
        """
        with torch.device("meta"):
            net = MobileNetV3.build_from_config(self._active_config(arch))
        config: dict[str, Any] = net.config
        return config

    #: NSGANetV2's ``post_search.py`` saves the inherited weights as ``net.inherited``
    weights_files = ("weights.pt", "net.inherited")

    def reference_files(self, arch: Architecture) -> dict[str, Any]:
        """NSGANetV2's ``net.subnet`` and ``net.config`` files (§4).

        ``net.subnet`` is the subnet dict; ``net.config`` OFA's network config, from which
        ``MobileNetV3.build_from_config`` rebuilds the network.
        """
        return {"net.subnet": self.subnet(arch), "net.config": self.net_config(arch)}

    def describe(self) -> dict[str, Any]:
        return {
            "space": "ofa_mbv3",
            "num_classes": self.num_classes,
            "supernet_classes": self.supernet_classes,
            "width_mult": self.width_mult,
            "resolutions": list(self.resolutions),
            "in_channels": self.in_channels,
            "dropout": self.dropout,
            "kernels": list(KERNELS),
            "expands": list(EXPANDS),
            "depths": list(DEPTHS),
            "n_var": self.n_var,
        }
