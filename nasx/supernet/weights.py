"""Loading supernet weights from Lightning checkpoints, safely."""

from __future__ import annotations

from pathlib import Path

from nasx.errors import NasxError
from nasx.io import load_state_dict
from nasx.search_space.base import SearchSpace
from nasx.supernet.base import Supernet, build_supernet


def load_supernet(space: SearchSpace, path: str | Path) -> Supernet:
    """Build the space's supernet and load ``path`` into it (``weights_only=True``).

    Accepts a Lightning checkpoint of `nasx.lit.SupernetLitModule` (keys ``net.*``) or a plain
    state dict; a checkpoint of another space or size is reported as a `NasxError`.
    """
    state = load_state_dict(path)
    if any(k.startswith("net.") for k in state):
        state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
    net = build_supernet(space)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise NasxError(
            f"checkpoint {path} does not fit this search space ({first}): use the same space "
            "settings as the run that trained it, or retrain the supernet"
        ) from exc
    return net.eval()
