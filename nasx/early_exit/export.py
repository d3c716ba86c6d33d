"""An exported early-exit network (``final/<name>/eenn.pt``) as a stand-alone module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasx.early_exit.network import EarlyExitNetwork, EarlyExitOutput
from nasx.errors import NasxError
from nasx.search_space.base import SearchSpace

#: what an ``eenn.pt`` holds besides the state dict
KEYS = ("arch", "exit_stages", "thresholds", "rule", "binary")


class EarlyExitInference(nn.Module):
    """A trained early-exit network whose ``forward`` exits (`EarlyExitNetwork.infer`).

    ``forward(x)`` returns an `EarlyExitOutput`: each sample's prediction and the exit it left
    at (and, with ``count_macs``, the M MACs it spent), computing the backbone only for the
    samples still inside. Always in eval mode.

    Args:
        net: the trained network, with thresholds.
        count_macs: count the MACs each sample actually spends (slower).
    """

    def __init__(self, net: EarlyExitNetwork, count_macs: bool = False) -> None:
        super().__init__()
        if net.thresholds is None:
            raise ValueError("an exported early-exit network needs thresholds")
        self.net, self.count_macs = net, count_macs
        self.eval()

    def train(self, mode: bool = True) -> EarlyExitInference:
        """Stays in eval mode: exiting samples would change training-mode BN statistics."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> EarlyExitOutput:
        """Predictions and exits of the batch ``x`` (see the class docstring)."""
        return self.net.infer(x, count_macs=self.count_macs)


def load_eenn(path: str | Path, space: SearchSpace, count_macs: bool = False) -> EarlyExitInference:
    """The network of an ``eenn.pt`` (written by the select stage), ready to run.

    Args:
        path: the ``final/<name>/eenn.pt`` file.
        space: the early-exit space it was searched in (``space=ee_mbv3`` / ``nachos_mbv3``,
            with the run's settings and ``num_classes``).
        count_macs: see `EarlyExitInference`.
    """
    path = Path(path)
    try:
        blob: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        missing = [k for k in (*KEYS, "state_dict") if k not in blob]
    except Exception as exc:  # torch raises many types for damaged files (as nasx.io)
        raise NasxError(
            f"{path} is not a readable eenn.pt ({exc}): re-run stages=[select]"
        ) from exc
    if missing:
        raise NasxError(f"{path} lacks {missing}: re-run stages=[select] to export it again")
    space_any: Any = space
    arch = space.parse(str(blob["arch"]))
    config = space_any.exit_config(arch)
    net = EarlyExitNetwork(
        space.build_network(arch),
        config.depths,
        [int(s) for s in blob["exit_stages"]],
        int(space_any.num_classes),
        bool(blob["binary"]),
        space.input_shape_of(arch),
        [float(t) for t in blob["thresholds"]],
        str(blob["rule"]),
    )
    try:
        net.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise NasxError(
            f"{path} does not fit {type(space).__name__} with these settings ({exc}): pass the "
            "space the run searched (its width, resolutions and num_classes)"
        ) from exc
    return EarlyExitInference(net, count_macs)
