"""Latency lookup tables (LUTs) in the OFA/NSGANetV2 YAML format: load, and measure one.

A LUT maps a layer key (`nasx.search_space.base.SearchSpace.latency_keys`) to
``{mean: <ms>, var: <ms^2>}``; an architecture's latency is the sum of its keys' means.
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import yaml  # type: ignore[import-untyped]
from torch import nn
from torch.utils.benchmark import Timer

from nasx.errors import NasxError
from nasx.io import write_text_atomic
from nasx.search_space.base import SearchSpace

#: how to rebuild a LUT, for error messages
REBUILD_HINT = "rebuild it for this space with nasx.objective.measure_lut(space, '{path}')"


# --- loading --------------------------------------------------------------------------------
def load_lut(path: str | Path) -> dict[str, float]:
    """The ``mean`` (ms) of every key of the LUT at ``path``.

    Raises:
        NasxError: the file is missing, not YAML, or not a mapping of key -> ``{mean: ms}``.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise NasxError(
            f"latency LUT {p} does not exist: point lut= at a LUT file, or build one with "
            f"nasx.objective.measure_lut(space, '{p}')"
        )
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise NasxError(
            f"latency LUT {p} is not valid YAML ({exc}): " + REBUILD_HINT.format(path=p)
        ) from None
    if not isinstance(data, dict) or not data:
        raise NasxError(
            f"latency LUT {p} is not a mapping of layer keys: {REBUILD_HINT.format(path=p)}"
        )
    out: dict[str, float] = {}
    for key, entry in data.items():
        mean = entry.get("mean") if isinstance(entry, dict) else None
        if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean):
            raise NasxError(
                f"latency LUT {p}: entry {key!r} has no finite 'mean' (ms): "
                + REBUILD_HINT.format(path=p)
            )
        out[str(key)] = float(mean)
    return out


# --- measuring ------------------------------------------------------------------------------
def space_latency_keys(space: SearchSpace, n_samples: int = 64, seed: int = 0) -> list[str]:
    """Distinct layer keys of ``space``'s extremes plus a seeded sample, sorted.

    The extremes are expected to hold every layer type (NB201's single-op cells do); the sample
    guards spaces whose extremes do not.

    Raises:
        NasxError: the space has no `latency_keys`.
    """
    rng = np.random.default_rng(seed)
    keys: set[str] = set()
    for arch in space.extremes() + [space.sample(rng) for _ in range(n_samples)]:
        arch_keys = space.latency_keys(arch)
        if arch_keys is None:
            raise NasxError(
                f"space {type(space).__name__} does not list latency_keys, so it cannot have a "
                "latency LUT: use a table device (objective.device=...) or another cost"
            )
        keys.update(arch_keys)
    return sorted(keys)


def time_layer(
    module: nn.Module, input_shape: tuple[int, ...], repeats: int, number: int, device: str
) -> tuple[float, float]:
    """``(mean, variance)`` in ms and ms^2 of one eval-mode forward of ``module``.

    Timed with `torch.utils.benchmark.Timer` (which synchronises CUDA) at the current
    ``torch.get_num_threads()``: one discarded warm-up run of ``number`` calls, then
    ``repeats`` runs of ``number`` calls; mean and variance are over the per-call times of
    the runs.
    """
    module = module.to(device).eval()
    x = torch.zeros(input_shape, device=device)
    timer = Timer(
        stmt="module(x)",
        globals={"module": module, "x": x},
        num_threads=torch.get_num_threads(),
    )
    with torch.no_grad():
        timer.timeit(number)
        runs = [timer.timeit(number).mean * 1e3 for _ in range(repeats)]
    var = statistics.variance(runs) if len(runs) > 1 else 0.0
    return statistics.fmean(runs), var


def measure_lut(
    space: SearchSpace,
    path: str | Path,
    repeats: int = 20,
    number: int = 10,
    device: str = "cpu",
    n_samples: int = 64,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Time every distinct layer of ``space`` on ``device`` and write the LUT to ``path``.

    The keys are `space_latency_keys` (``n_samples``, ``seed``); each layer is a freshly
    initialised module (`SearchSpace.latency_layer`) timed by `time_layer` (``repeats``,
    ``number``).
    The YAML file is written atomically; a comment at its top records device, threads,
    torch version and timing settings. Returns the LUT as written.

    Raises:
        ValueError: ``repeats`` or ``number`` below 1.
        NasxError: the space has no `latency_keys`, or builds no `latency_layer`.
    """
    if repeats < 1 or number < 1:
        raise ValueError(f"measure_lut: repeats={repeats} and number={number} must be >= 1")
    start = time.perf_counter()
    lut: dict[str, dict[str, float]] = {}
    for key in space_latency_keys(space, n_samples=n_samples, seed=seed):
        layer = space.latency_layer(key)
        if layer is None:
            raise NasxError(
                f"space {type(space).__name__} lists latency keys but builds no latency_layer "
                f"for {key!r}, so its LUT cannot be measured: implement latency_layer"
            )
        mean, var = time_layer(layer[0], layer[1], repeats, number, device)
        lut[key] = {"mean": mean, "var": var}
    machine = platform.processor() or platform.machine()
    header = (
        f"# nasx latency LUT ({len(lut)} layers): device={device} ({machine}),"
        f" threads={torch.get_num_threads()}, torch={torch.__version__}, repeats={repeats},"
        f" number={number}, measured in {time.perf_counter() - start:.1f} s\n"
        "# key -> {mean: ms per forward of one sample, var: ms^2 over the repeats}\n"
    )
    write_text_atomic(path, header + yaml.safe_dump(lut, sort_keys=True))
    return lut
