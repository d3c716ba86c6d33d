"""The ``profile`` stage: parameters, MACs and activations of given architectures.

Needs no data and no supernet: ``python run.py stages=[profile] +arch=<architecture>`` (or
``+archs=[a,b]``; names of published architectures work too) writes ``profile.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import ListConfig

from nasx.config import build
from nasx.errors import NasxError
from nasx.io import write_json_atomic
from nasx.objective.activations import count_activations
from nasx.objective.profile import count_macs, count_params
from nasx.stages.base import Stage, register_stage
from nasx.stages.context import RunContext

log = logging.getLogger(__name__)


def requested_archs(run: RunContext) -> list[str]:
    """The architecture texts of ``+arch=`` and ``+archs=[...]``, in order."""
    cfg = run.cfg
    texts: list[str] = []
    if cfg.get("arch") is not None:
        texts.append(str(cfg.arch))
    archs = cfg.get("archs")
    if archs is not None:
        if not isinstance(archs, ListConfig | list):
            raise NasxError("archs must be a list: pass +archs=[<arch>,<arch>]")
        texts.extend(str(a) for a in archs)
    if not texts:
        raise NasxError(
            "stages=[profile] needs architectures: pass +arch=<architecture> or "
            "+archs=[<architecture>,...] (canonical strings, stored forms or published names)"
        )
    return texts


def _request(run: RunContext) -> dict[str, Any]:
    return {"archs": requested_archs(run), "num_classes": run.cfg.profile.num_classes}


@register_stage
class ProfileStage(Stage):
    """Counts each architecture's stand-alone network (`SearchSpace.build_network`).

    ``profile.json`` holds the request and one entry per architecture: ``arch`` (canonical),
    ``params``, ``macs`` and ``activations`` in millions (and ``lut_flops``, the seed's own
    FLOPs lookup table, where the space has one), at the network's input size
    (`SearchSpace.input_shape_of`) with ``profile.num_classes`` classifier outputs
    (``null``: the dataset's; the papers' ImageNet figures use 1000).
    """

    name = "profile"
    order = 0

    def outputs(self, run: RunContext) -> list[Path]:
        return [run.run_dir / "profile.json"]

    def done(self, run: RunContext) -> bool:
        path = self.outputs(run)[0]
        return path.exists() and json.loads(path.read_text()).get("request") == _request(run)

    def run(self, run: RunContext) -> dict[str, Any]:
        cfg = run.cfg
        classes = cfg.profile.num_classes
        space = (
            run.parts.space
            if classes is None
            else build("space", cfg.space, num_classes=int(classes))
        )
        archs = [space.parse(text) for text in requested_archs(run)]
        entries = []
        for arch in archs:
            net = space.build_network(arch)
            shape = space.input_shape_of(arch)
            entry = {
                "arch": space.to_str(arch),
                "input_shape": list(shape),
                "params": count_params(net),
                "macs": count_macs(net, shape),
                "activations": count_activations(net, shape) / 1e6,
            }
            lut = getattr(space, "lut_flops", None)
            if lut is not None:  # the seed's own FLOPs table (thop's rules), e.g. RLNAS B.5
                entry["lut_flops"] = lut(arch) / 1e6
            entries.append(entry)
            log.info(
                "profile: %s: %.3fM params, %.1fM MACs",
                entries[-1]["arch"],
                entries[-1]["params"],
                entries[-1]["macs"],
            )
        result = {
            "request": _request(run),
            "space": space.describe(),
            "input_shape": list(space.network_input_shape),
            "architectures": entries,
        }
        write_json_atomic(self.outputs(run)[0], result)
        return result
