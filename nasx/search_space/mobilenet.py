"""RLNAS's MobileNet (ProxylessNAS-like) space: one of 6 MBConvs or a skip in each of 21 layers."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from nasx.errors import NasxError
from nasx.search_space._mobilenet_net import (
    BLOCKS,
    FIXED_CHANNELS,
    FIXED_LAYERS,
    HEAD_CHANNELS,
    N_LAYERS,
    SKIP,
    STAGES,
    STEM_CHANNELS,
    MobileNetNetwork,
    block_key,
    layer_plan,
    scale,
)
from nasx.search_space.base import Architecture, SearchSpace

#: a LUT row key: (inp, oup, input height, input width, stride), as RLNAS's ``backbone_info``
ShapeKey = tuple[int, int, int, int, int]

#: RLNAS's searched architecture (``retrain.sh --model_id``, reference B.8)
RLNAS_MOBILENET = "2 0 -1 2 2 0 2 4 0 4 4 2 4 2 4 2 0 0 0 2 2"

_FORM = (
    f"expected RLNAS's model_id: {N_LAYERS} op indices -1..{len(BLOCKS) - 1} separated by "
    "spaces or commas (brackets allowed), 0..5 = k3e3, k3e6, k5e3, k5e6, k7e3, k7e6 and -1 = "
    f"skip, which layers {', '.join(map(str, FIXED_LAYERS))} cannot take "
    f"(e.g. {RLNAS_MOBILENET!r}), or the name RLNAS_MOBILENET"
)


def _down(size: int, stride: int) -> int:
    """Output size of a ``padding = kernel // 2`` conv with odd kernel: ceil(size / stride)."""
    return -(-size // stride)


def block_flops(inp: int, oup: int, kernel: int, expand: int, h: int, w: int, stride: int) -> int:
    """MACs of one MBConv on an ``h x w`` input, by thop's conv rule (reference B.5).

    ``inp * hidden * h * w`` (the expanding pw conv; absent when ``expand == 1``) ``+ kernel^2 *
    hidden * h' * w'`` (dw) ``+ hidden * oup * h' * w'`` (pw-linear), with ``hidden = expand *
    inp`` and ``h' x w'`` the output size. BN, ReLU6 and the residual add are not counted.
    """
    hidden = inp * expand
    out = _down(h, stride) * _down(w, stride)
    pw = inp * hidden * h * w if expand != 1 else 0
    return pw + kernel * kernel * hidden * out + hidden * oup * out


class MobileNetSpace(SearchSpace):
    """RLNAS's MobileNet search space (ProxylessNAS layout, 21 choice layers, reference B.2).

    Gene mapping: gene ``g`` of layer ``i`` is reference op ``g - 1``, i.e. 0 = skip (RLNAS
    -1), 1 = k3e3, 2 = k3e6, 3 = k5e3, 4 = k5e6, 5 = k7e3, 6 = k7e6 (RLNAS 0..5). Layers 0, 4,
    8, 12, 16 and 20 change width or stride and have lower bound 1, so no operator can put a
    skip there; the other 15 layers have 7 choices and the 6 fixed ones 6. The canonical string
    is RLNAS's ``model_id``: the 21 reference ops, space-separated, -1 for skip.

    Costs: `lut_flops` sums RLNAS's FLOPs lookup table (`flops_table`, thop's rules), which
    ``nasx.objective.flops_lut.FlopsLUTObjective`` reads; the generic ``objective=flops``
    counts the built network with PyTorch's counter instead (see `flops_table` for how the two
    differ).

    Args:
        num_classes: classifier outputs (set from the dataset; 1000 for ImageNet).
        image_size: input height and width (224 in RLNAS).
        in_channels: input image channels.
        width_mult: multiplier of every width (1.0 = RLNAS); smaller values give CPU-sized
            variants of the same space.
        dropout: dropout before the classifier of `build_network` (RLNAS retrains with 0.2,
            reference B.8); the supernet has none.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        image_size: int = 224,
        in_channels: int = 3,
        width_mult: float = 1.0,
        dropout: float = 0.0,
    ) -> None:
        for name, v in (
            ("num_classes", num_classes),
            ("image_size", image_size),
            ("in_channels", in_channels),
        ):
            if v < 1:
                raise ValueError(f"space.{name} must be >= 1, got {v}")
        if not width_mult > 0:
            raise ValueError(f"space.width_mult must be > 0, got {width_mult}")
        if not 0 <= dropout < 1:
            raise ValueError(f"space.dropout must be in [0, 1), got {dropout}")
        self.num_classes, self.image_size, self.in_channels = num_classes, image_size, in_channels
        self.width_mult, self.dropout = float(width_mult), float(dropout)
        self.input_shape = (in_channels, image_size, image_size)
        self.lower = np.array([1 if i in FIXED_LAYERS else 0 for i in range(N_LAYERS)])
        self.upper = np.full(N_LAYERS, len(BLOCKS), dtype=int)
        self._table: dict[str, dict[ShapeKey, float]] | None = None

    # --- values --------------------------------------------------------------------------
    def ops(self, arch: Architecture) -> tuple[int, ...]:
        """The 21 reference op indices of ``arch`` (-1 skip, 0..5 `BLOCKS`): its supernet path."""
        return tuple(g - 1 for g in arch.genes)

    def to_str(self, arch: Architecture) -> str:
        """RLNAS's ``model_id``, e.g. ``2 0 -1 2 2 0 2 4 0 4 4 2 4 2 4 2 0 0 0 2 2``."""
        return " ".join(str(op) for op in self.ops(arch))

    def _parse(self, text: str) -> Architecture:
        """RLNAS's ``model_id``: 21 reference ops -1..5, separated by spaces or commas."""
        tokens = [t for t in re.split(r"[\s,()\[\]]+", text) if t]
        if len(tokens) != N_LAYERS or not all(re.fullmatch(r"-?\d+", t) for t in tokens):
            raise NasxError(f"cannot parse architecture {text!r}: {_FORM}")
        ops = [int(t) for t in tokens]
        for i, op in enumerate(ops):
            if not SKIP <= op < len(BLOCKS):
                raise NasxError(
                    f"cannot parse architecture {text!r}: layer {i} has op {op}; {_FORM}"
                )
            if op == SKIP and i in FIXED_LAYERS:
                raise NasxError(
                    f"cannot parse architecture {text!r}: layer {i} cannot be skipped; {_FORM}"
                )
        return Architecture(tuple(op + 1 for op in ops))

    def named_architectures(self) -> dict[str, str]:
        """RLNAS's published MobileNet architecture (473M FLOPs, 5.3M parameters)."""
        return {"RLNAS_MOBILENET": RLNAS_MOBILENET}

    def mutation_choices(self, gene: int) -> np.ndarray:
        """Layer ``gene``'s options: every MBConv, plus skip (gene 0) outside the fixed layers.

        RLNAS's mutation re-draws from the layer's option list, skip included (reference B.4).
        """
        return np.arange(self.lower[gene], self.upper[gene] + 1)

    def extremes(self) -> list[Architecture]:
        """The cheapest (skip wherever allowed, k3e3 in the fixed layers) and all-k7e6."""
        return [self.decode(self.lower), self.decode(self.upper)]

    # --- costs ---------------------------------------------------------------------------
    def layer_keys(self) -> list[ShapeKey]:
        """``(inp, oup, img_h, img_w, stride)`` of the 21 layers; ``img`` is the INPUT size."""
        h = _down(self.image_size, 2)  # after the stride-2 stem (the fixed block keeps it)
        out: list[ShapeKey] = []
        for inp, oup, s in layer_plan(self.width_mult):
            out.append((inp, oup, h, h, s))
            h = _down(h, s)
        return out

    def pre_key(self) -> ShapeKey:
        """LUT key of ``PreProcessing`` (stem + fixed MBConv), RLNAS's (3, 40, 224, 224, 2)."""
        c_stem = scale(STEM_CHANNELS, self.width_mult)
        return (self.in_channels, c_stem, self.image_size, self.image_size, 2)

    def post_key(self) -> ShapeKey:
        """LUT key of ``PostProcessing`` (conv1x1 + Linear), RLNAS's (432, 1728, 7, 7, 1)."""
        inp, oup, h, w, s = self.layer_keys()[-1]
        c_head = scale(HEAD_CHANNELS, self.width_mult)
        return (oup, c_head, _down(h, s), _down(w, s), 1)

    def flops_table(self) -> dict[str, dict[ShapeKey, float]]:
        """RLNAS's FLOPs lookup table (``op_flops_dict.pkl``, reference B.5), from closed forms.

        ``table[op_key][(inp, oup, img_h, img_w, stride)]`` with op keys ``'PreProcessing'``,
        ``'mobilenet_{k}x{k}_ratio_{e}'`` (one row per distinct layer shape) and
        ``'PostProcessing'``. thop's rules: a conv costs ``C_in * k^2 * out_elements / groups``
        MACs, the Linear ``(2 * in - 1) * out``; BN, ReLU6, pooling and residual adds cost 0.
        At width 1, 224 px and 1000 classes, Pre = 30,105,600 and Post = 40,033,304.

        PyTorch's counter (`nasx.objective.profile.count_macs`) counts the Linear as
        ``in * out`` MACs, so it gives ``lut_flops - (in - 1) * out`` for every architecture.
        """
        if self._table is None:
            self._table = self._build_table()
        return self._table

    def _build_table(self) -> dict[str, dict[ShapeKey, float]]:
        c_in, c_stem, size, _, _ = self.pre_key()
        h = _down(size, 2)
        c_fixed = scale(FIXED_CHANNELS, self.width_mult)
        pre = c_in * 9 * c_stem * h * h + block_flops(c_stem, c_fixed, 3, 1, h, h, 1)
        post_key = self.post_key()
        c_last, c_head, ph, pw, _ = post_key
        post = c_last * c_head * ph * pw + (2 * c_head - 1) * self.num_classes
        table: dict[str, dict[ShapeKey, float]] = {"PreProcessing": {self.pre_key(): float(pre)}}
        for op, (k, e) in enumerate(BLOCKS):
            table[block_key(op)] = {
                key: float(block_flops(key[0], key[1], k, e, key[2], key[3], key[4]))
                for key in self.layer_keys()
            }
        table["PostProcessing"] = {post_key: float(post)}
        return table

    def lut_flops(self, arch: Architecture) -> float:
        """FLOPs (MACs) of ``arch`` from `flops_table`: Pre + Post + each non-skip layer's row.

        A skip costs 0 (RLNAS ``search.py:61-72``). RLNAS_MOBILENET costs 473.2M at width 1.
        """
        table = self.flops_table()
        total = table["PreProcessing"][self.pre_key()] + table["PostProcessing"][self.post_key()]
        for op, key in zip(self.ops(arch), self.layer_keys(), strict=True):
            if op != SKIP:
                total += table[block_key(op)][key]
        return total

    # --- networks ------------------------------------------------------------------------
    def build_network(self, arch: Architecture) -> MobileNetNetwork:
        return MobileNetNetwork(
            self.ops(arch), self.num_classes, self.in_channels, self.width_mult, self.dropout
        )

    def describe(self) -> dict[str, Any]:
        return {
            "space": "mobilenet",
            "image_size": self.image_size,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "width_mult": self.width_mult,
            "dropout": self.dropout,
            "stages": [list(s) for s in STAGES],
        }
