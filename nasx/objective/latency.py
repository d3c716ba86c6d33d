"""Latency: read from the space's device table, or summed from a measured lookup table."""

from __future__ import annotations

from pathlib import Path

from nasx.errors import NasxError
from nasx.objective.base import Objective
from nasx.objective.lut import REBUILD_HINT, load_lut
from nasx.search_space.base import Architecture, SearchSpace

#: prefix of the latency columns of a space's ground-truth table
LATENCY_PREFIX = "latency_ms_"


def table_devices(space: SearchSpace) -> list[str]:
    """Devices of ``space``'s ``latency_ms_<device>`` table columns (empty: no such column)."""
    gt = space.ground_truth(space.extremes()[0])
    return sorted(k[len(LATENCY_PREFIX) :] for k in gt if k.startswith(LATENCY_PREFIX))


class LatencyObjective(Objective):
    """Latency of an architecture in milliseconds, from a table or a lookup table (LUT).

    Exactly one source is set:

    * ``device``: the space's tabulated latency, column ``latency_ms_<device>`` of
      `SearchSpace.ground_truth`. NAS-Bench-201's packaged table has 25 (HELP / BRP-NAS /
      HW-NAS-Bench): ``1080ti_1``, ``1080ti_32``, ``1080ti_256``, ``2080ti_*``,
      ``titan_rtx_*``, ``titanx_*``, ``titanxp_*`` (GPUs, suffix = batch size),
      ``essential_ph_1``, ``pixel2``, ``pixel3``, ``samsung_a50``, ``samsung_s7`` (phones),
      ``raspi4``, ``eyeriss``, ``fpga``, ``gold_6226``, ``gold_6240``, ``silver_4114``,
      ``silver_4210r``. The table holds the published network (C=16, N=5, 32x32 inputs)
      whatever the space's own size, so on a smaller space it is a proxy.
    * ``lut``: path to a LUT in the OFA/NSGANetV2 YAML format (``key: {mean: ms, var: ...}``,
      built by `nasx.objective.measure_lut`); the latency is the sum of the means of
      `SearchSpace.latency_keys` of the architecture.

    Args:
        device: table device name (``latency_ms_`` prefix optional), or ``None`` with ``lut``.
        lut: LUT file path, or ``None`` with ``device``.
        upper, lower, handling, penalty: bounds, see `nasx.objective.base.Objective`.

    Raises:
        ValueError: neither or both of ``device`` and ``lut`` set.
        NasxError (from `check` / a call): unknown device (the message lists the valid ones),
            a space without latency columns or keys, a missing or malformed LUT, a key missing
            from the LUT.
    """

    name = "latency"
    cheap = True

    def __init__(
        self,
        device: str | None = None,
        lut: str | None = None,
        upper: float | None = None,
        lower: float | None = None,
        handling: str = "constraint",
        penalty: float = 1e10,
    ) -> None:
        super().__init__(upper=upper, lower=lower, handling=handling, penalty=penalty)
        if (device is None) == (lut is None):
            raise ValueError(
                "latency: set either device= (a column of the space's latency table) or lut= "
                "(a measured lookup table), not "
                + (
                    "both: with objective=latency add objective.device=null"
                    if device
                    else "neither"
                )
            )
        self.device = None if device is None else device.removeprefix(LATENCY_PREFIX)
        self.lut = lut
        self._lut: dict[str, float] | None = None

    # --- validation ----------------------------------------------------------------------
    def check(self, space: SearchSpace) -> None:
        """Raise `NasxError` unless every architecture of ``space`` can get a latency.

        Table mode: the device's column exists. LUT mode: the LUT loads, the space lists
        layer keys, and the LUT holds every key of the space's extremes.
        """
        if self.device is not None:
            devices = table_devices(space)
            if not devices:
                raise NasxError(
                    f"space {type(space).__name__} has no latency table: measure a LUT with "
                    "nasx.objective.measure_lut(space, path) and use objective.device=null "
                    "objective.lut=path"
                )
            if self.device not in devices:
                raise NasxError(
                    f"unknown latency device {self.device!r}: choose one of "
                    f"{', '.join(devices)} (objective.device=<name> with objective=latency)"
                )
            return
        for arch in space.extremes():
            self._lut_latency(arch, space)

    # --- the value -----------------------------------------------------------------------
    def _compute(self, arch: Architecture, space: SearchSpace) -> float:
        if self.device is None:
            return self._lut_latency(arch, space)
        column = LATENCY_PREFIX + self.device
        row = space.ground_truth(arch)
        if column not in row:
            self.check(space)  # raises with the list of devices
            raise NasxError(f"no {column} for {space.to_str(arch)} in the space's table")
        return row[column]

    def _lut_latency(self, arch: Architecture, space: SearchSpace) -> float:
        assert self.lut is not None
        if self._lut is None:
            self._lut = load_lut(self.lut)
        keys = space.latency_keys(arch)
        if keys is None:
            raise NasxError(
                f"space {type(space).__name__} does not list latency_keys, so a LUT cannot "
                "price its layers: use a table device (objective.device=...) or another cost"
            )
        total = 0.0
        for key in keys:
            if key not in self._lut:
                raise NasxError(
                    f"latency LUT {self.lut} has no entry for layer {key!r} (it was built for "
                    "another space or size): "
                    + REBUILD_HINT.format(path=Path(self.lut).expanduser())
                )
            total += self._lut[key]
        return total
