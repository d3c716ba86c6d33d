"""The once-for-all MobileNetV3 supernet: OFA's own ``OFAMobileNetV3`` as a nasx `Supernet`.

The class *is* OFA's network (same modules, same state-dict keys: ``first_conv.conv.weight``,
``blocks.0.conv.depth_conv.conv.weight``, ``blocks.1.conv.depth_conv.conv.conv.weight``,
``blocks.1.conv.depth_conv.conv.7to5_matrix``, ...), so
OFA's published ``ofa_mbv3_d234_e346_k357_w1.0`` / ``_w1.2`` state dicts load into the
supernet of ``OFAMobileNetV3Space(width_mult=1.0 / 1.2, num_classes=1000)`` with
``strict=True`` (``supernet.checkpoint=<file>``). A path is NSGANetV2's subnet dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ofa.imagenet_classification.elastic_nn.modules.dynamic_op import DynamicSeparableConv2d
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
from ofa.utils.layers import ConvLayer
from torch import nn

from nasx.search_space.base import Architecture
from nasx.search_space.ofa_mbv3 import (
    DEPTHS,
    EXPANDS,
    KERNELS,
    N_STAGES,
    OFAMobileNetV3Space,
    pad_layers,
)
from nasx.supernet.base import Supernet, register_supernet

#: OFA's older checkpoint key spellings and the current ones (OFA ``OFAMobileNetV3.
#: load_state_dict``): tried in order for a key the supernet does not have
_LEGACY_KEYS: tuple[tuple[str, str], ...] = (
    (".bn.bn.", ".bn."),
    (".conv.conv.weight", ".conv.weight"),
    (".linear.linear.", ".linear."),
    (".linear.", ".linear.linear."),
    ("bn.", "bn.bn."),
    ("conv.weight", "conv.conv.weight"),
)


def _choices(name: str, given: Iterable[int] | None, allowed: Sequence[int]) -> tuple[int, ...]:
    """``given`` as a sorted tuple (``allowed`` when ``None``), checked to be within it."""
    if given is None:
        return tuple(allowed)
    values = tuple(sorted({int(v) for v in given}))
    if not values or not set(values) <= set(allowed):
        raise ValueError(f"sample_path {name}={list(values)}: use a non-empty subset of {allowed}")
    return values


@register_supernet(OFAMobileNetV3Space)
class OFAMobileNetV3Supernet(OFAMobileNetV3, Supernet):
    """OFA's elastic MobileNetV3 (``d234_e346_k357``), running one subnet per call.

    Built as NSGANetV2's evaluator builds it: ``OFAMobileNetV3(n_classes, dropout_rate=0,
    width_mult, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])`` with
    ``DynamicSeparableConv2d.KERNEL_TRANSFORM_MODE = 1``. That is a class attribute of OFA's
    (process-wide, and OFA's default): smaller kernels are the centre of the 7x7 kernel passed
    through learned ``7to5``/``5to3`` matrices, which the official checkpoints hold. A space
    with ``in_channels != 3`` gets a first conv for that many channels (no OFA checkpoint
    then fits).

    A path is a subnet dict ``{"ks": [...], "e": [...], "d": [5 depths](, "r": r)}``
    (`OFAMobileNetV3Space.subnet`). `forward` runs the subnet on ``x`` as given: the
    resolution ``"r"`` is the data pipeline's business (`nasx.supernet.recipe.TrainingRecipe.
    inputs_for` resizes training batches to it); the supernet never resizes.
    """

    space: OFAMobileNetV3Space
    has_path_weights = False
    #: OFA's stem (a ``ConvLayer``); declared for the type checker, OFA's code is untyped
    first_conv: Any

    def __init__(self, space: OFAMobileNetV3Space) -> None:
        DynamicSeparableConv2d.KERNEL_TRANSFORM_MODE = 1  # before the layers are built
        super().__init__(
            n_classes=space.supernet_classes,
            dropout_rate=0,
            width_mult=space.width_mult,
            ks_list=list(KERNELS),
            expand_ratio_list=list(EXPANDS),
            depth_list=list(DEPTHS),
        )
        self.space = space
        if space.in_channels != 3:
            width = self.first_conv.out_channels
            self.first_conv = ConvLayer(
                space.in_channels, width, kernel_size=3, stride=2, act_func="h_swish"
            )
            OFAMobileNetV3.set_bn_param(self, momentum=0.1, eps=1e-5)  # OFA's bn_param

    # --- paths ---------------------------------------------------------------------------
    def _activate(self, path: Mapping[str, Any]) -> None:
        """Make ``path`` OFA's active subnet (``set_active_subnet``), after checking its form."""
        ks, es, ds = list(path["ks"]), list(path["e"]), list(path["d"])
        if len(ds) != N_STAGES or len(ks) != sum(ds) or len(es) != sum(ds):
            raise ValueError(
                f"path {dict(path)!r}: need {N_STAGES} depths and sum(d) kernels and expand "
                "ratios (OFAMobileNetV3Space.subnet's form)"
            )
        OFAMobileNetV3.set_active_subnet(self, ks=pad_layers(ks, ds), e=pad_layers(es, ds), d=ds)

    def forward(self, x: torch.Tensor, path: Mapping[str, Any]) -> torch.Tensor:
        """Logits of the subnet ``path`` on ``x`` at ``x``'s own size (``"r"`` is not used)."""
        self._activate(path)
        out: torch.Tensor = OFAMobileNetV3.forward(self, x)
        return out

    def sample_path(
        self,
        rng: np.random.Generator,
        ks: Iterable[int] | None = None,
        e: Iterable[int] | None = None,
        d: Iterable[int] | None = None,
        r: Iterable[int] | None = None,
    ) -> dict[str, Any]:
        """A subnet drawn uniformly per choice from ``rng`` (OFA's ``sample_active_subnet``).

        The five depths first, then one kernel per active layer, then one expand ratio per
        active layer, then the resolution (only when the space has a resolution gene), each
        uniform over its allowed values, as NSGANetV2's ``OFASearchSpace.sample`` draws them.
        ``ks``, ``e``, ``d`` and ``r`` restrict the values (defaults: all; ``r`` from the
        space's resolutions), as OFA's progressive shrinking does.
        """
        k_opts = _choices("ks", ks, KERNELS)
        e_opts = _choices("e", e, EXPANDS)
        d_opts = _choices("d", d, DEPTHS)
        r_opts = _choices("r", r, self.space.resolution_choices)
        depths = [d_opts[i] for i in rng.integers(len(d_opts), size=N_STAGES)]
        n = sum(depths)
        path: dict[str, Any] = {
            "ks": [k_opts[i] for i in rng.integers(len(k_opts), size=n)],
            "e": [e_opts[i] for i in rng.integers(len(e_opts), size=n)],
            "d": depths,
        }
        if self.space.has_resolution_gene:
            path["r"] = r_opts[int(rng.integers(len(r_opts)))]
        return path

    def _uniform_path(self, pick: Any) -> dict[str, Any]:
        d = pick(DEPTHS)
        path: dict[str, Any] = {
            "ks": [pick(KERNELS)] * (d * N_STAGES),
            "e": [pick(EXPANDS)] * (d * N_STAGES),
            "d": [d] * N_STAGES,
        }
        if self.space.has_resolution_gene:
            path["r"] = pick(self.space.resolution_choices)
        return path

    def largest_path(self) -> dict[str, Any]:
        """Depth 4, kernel 7 and expand 6 everywhere, the highest resolution (OFA's max net)."""
        return self._uniform_path(max)

    def smallest_path(self) -> dict[str, Any]:
        """Depth 2, kernel 3 and expand 3 everywhere, the lowest resolution."""
        return self._uniform_path(min)

    def path_of(self, arch: Architecture) -> dict[str, Any]:
        """``arch``'s subnet dict (`OFAMobileNetV3Space.subnet`)."""
        return self.space.subnet(arch)

    def extract(self, arch: Architecture) -> nn.Module:
        """OFA's ``get_active_subnet(preserve_weight=True)``: a static ``MobileNetV3``.

        The weights (kernels transformed to their active size, BN statistics and all) are
        copies, on this supernet's device; the network is returned in training mode.
        """
        self._activate(self.path_of(arch))
        net: Any = OFAMobileNetV3.get_active_subnet(self, preserve_weight=True)
        n = self.space.num_classes
        if self.space.supernet_classes != n:  # CNAS: the first n_classes rows of the head
            head: nn.Linear = net.classifier.linear
            cut = nn.Linear(head.in_features, n, bias=head.bias is not None)
            with torch.no_grad():
                cut.weight.copy_(head.weight[:n])
                if head.bias is not None:
                    cut.bias.copy_(head.bias[:n])
            net.classifier.linear = cut
            net.classifier.out_features = n
        out: nn.Module = net.to(self.device).train()
        return out

    # --- weights -------------------------------------------------------------------------
    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """PyTorch's ``load_state_dict`` (``strict`` honoured), after OFA's key renames.

        OFA's own override fills missing keys from the current weights and ignores
        ``strict``; here a key the supernet lacks is renamed as OFA does (older checkpoints'
        ``.mobile_inverted_conv.``, static-layer spellings) when that gives one of its keys,
        and PyTorch then reports missing and unexpected keys as usual.
        """
        own = set(self.state_dict())
        renamed: dict[str, Any] = {}
        for key, value in state_dict.items():
            new = key.replace(".mobile_inverted_conv.", ".conv.")
            if new not in own:
                for old, repl in _LEGACY_KEYS:
                    if old in new and new.replace(old, repl) in own:
                        new = new.replace(old, repl)
                        break
                else:
                    new = new if new in own else key
            renamed[new] = value
        return nn.Module.load_state_dict(self, renamed, strict=strict, assign=assign)
