"""Early-exit OFA MobileNetV3 spaces of CNAS's EENN work: EDANAS and NACHOS (reference §6.3-6.4).

Both extend `OFAMobileNetV3Space`'s 45 backbone genes with one gene per candidate exit position
(after stages 1..4; the final exit always follows stage 5), placed before the optional
resolution gene, as NasSearchSpace's ``ofa/search_space.py`` encodes them:

* `EEMobileNetV3Space` (``space=ee_mbv3``, EDANAS's ``eemobilenetv3``): a threshold
  t_i in {0.1, 0.2, 1} per position, 1 meaning no exit;
* `NachosMobileNetV3Space` (``space=nachos_mbv3``, NACHOS's ``cbnmobilenetv3``): an exit
  switch b_i in {0, 1} per position, at least one on.

The backbone is OFA's, unchanged: `subnet` is the backbone's subnet dict, which the OFA supernet
(registered for `OFAMobileNetV3Space`, found through the MRO) trains and extracts; the exits are
read with `exit_config` and built around the backbone by the early-exit network.
"""

from __future__ import annotations

import json
import math
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from nasx.errors import NasxError
from nasx.search_space.base import Architecture
from nasx.search_space.ofa_mbv3 import (
    DEPTHS,
    EXPANDS,
    KERNELS,
    N_STAGES,
    STAGE_GENES,
    OFAMobileNetV3Space,
)

#: candidate exit positions: after stages 1..N_EXITS (the final exit follows the last stage)
N_EXITS = N_STAGES - 1
#: the exit genes' positions: right after the backbone's genes, before the resolution gene
BACKBONE_GENES = N_STAGES * STAGE_GENES
EXIT_GENES = slice(BACKBONE_GENES, BACKBONE_GENES + N_EXITS)
#: EDANAS's threshold choices (NSS ``ofa/search_space.py``: ``threshold = [0.1, 0.2, 1]``)
THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 1.0)
#: the threshold that places no exit
NO_EXIT = 1.0


def exit_blocks(depths: Sequence[int], stages: Iterable[int]) -> list[int]:
    """Indices of the OFA ``blocks`` whose outputs feed the exits, the final exit's last.

    Block 0 is OFA's fixed first block, so stage i ends at block d_1 + ... + d_i (EE
    ``utils_ee.py`` ``get_eenn``); the final exit follows block sum(d). ``stages`` are the
    intermediate exits' stages in 1..len(depths) - 1, returned in ascending order.

    Raises:
        ValueError: a stage is out of range or repeated.
    """
    chosen = sorted(int(s) for s in stages)
    if len(set(chosen)) != len(chosen) or any(not 1 <= s < len(depths) for s in chosen):
        raise ValueError(
            f"exit stages {chosen}: need distinct stages in 1..{len(depths) - 1} (the final "
            "exit after the last stage is always there)"
        )
    ends = np.cumsum([int(d) for d in depths]).tolist()
    return [ends[s - 1] for s in chosen] + [ends[-1]]


@dataclass(frozen=True)
class ExitConfig:
    """An architecture's early exits: where they sit and, for EDANAS, their thresholds.

    Attributes:
        stages: the stages (1..4, ascending) after whose last block an intermediate exit sits;
            empty when the network has only its final exit.
        thresholds: EDANAS: the score-margin threshold of each intermediate exit, in the order
            of ``stages`` (ε = [t_i for t_i != 1]; the final exit takes every sample left).
            NACHOS: ``None``, its thresholds are tuned after the exits are trained.
        depths: the 5 stage depths of the backbone.
    """

    stages: tuple[int, ...]
    thresholds: tuple[float, ...] | None
    depths: tuple[int, ...]

    @property
    def blocks(self) -> list[int]:
        """`exit_blocks` of ``depths`` and ``stages``: the intermediate exits', then the final."""
        return exit_blocks(self.depths, self.stages)


def _json_number(v: float) -> float | int:
    """``v`` as CNAS's config writes it (``1``, not ``1.0``)."""
    return int(v) if float(v).is_integer() else float(v)


class _EarlyExitSpace(OFAMobileNetV3Space):
    """`OFAMobileNetV3Space` plus `N_EXITS` exit genes before the optional resolution gene.

    A subclass names the subnet key of the exit genes (`exit_key`), their values
    (`exit_values`, indexed by the genes) and `exit_config`. The defaults follow EDANAS and
    NACHOS: a fixed resolution of 32 (no resolution gene, 49 genes); a resolution range adds
    the gene last (50 genes).
    """

    #: subnet-dict key of the exit genes
    exit_key: str
    #: the value of each exit gene index
    exit_values: tuple[float, ...]
    #: ``space=`` option, for `describe`
    option: str

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        resolutions: Sequence[int] = (32, 32, 1),
        in_channels: int = 3,
        dropout: float = 0.0,
        supernet_classes: int | None = None,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            width_mult=width_mult,
            resolutions=resolutions,
            in_channels=in_channels,
            dropout=dropout,
            supernet_classes=supernet_classes,
        )
        top = len(self.exit_values) - 1
        self.lower = np.insert(self.lower, BACKBONE_GENES, [0] * N_EXITS)
        self.upper = np.insert(self.upper, BACKBONE_GENES, [top] * N_EXITS)

    # --- values --------------------------------------------------------------------------
    def exit_genes(self, arch: Architecture) -> tuple[int, ...]:
        """The `N_EXITS` exit genes of ``arch`` (indices into `exit_values`)."""
        return arch.genes[EXIT_GENES]

    def depths_of(self, arch: Architecture) -> tuple[int, ...]:
        """The five stage depths of ``arch``."""
        return tuple(DEPTHS[arch.genes[s * STAGE_GENES]] for s in range(N_STAGES))

    @abstractmethod
    def exit_config(self, arch: Architecture) -> ExitConfig:
        """Where ``arch``'s exits sit (and their thresholds, EDANAS)."""

    def full_subnet(self, arch: Architecture) -> dict[str, Any]:
        """`subnet` with the exit genes: CNAS's config, the content of its ``net_<i>.subnet``.

        ``{"ks": [...], "e": [...], "d": [...], <exit_key>: [4 values](, "r": r)}``.
        """
        backbone = self.subnet(arch)
        out = {k: backbone[k] for k in ("ks", "e", "d")}
        out[self.exit_key] = [_json_number(self.exit_values[g]) for g in self.exit_genes(arch)]
        if "r" in backbone:
            out["r"] = backbone["r"]
        return out

    def to_str(self, arch: Architecture) -> str:
        """Compact JSON of `full_subnet`, e.g. ``{"ks":[...],"e":[...],"d":[...],"t":[...]}``."""
        return json.dumps(self.full_subnet(arch), separators=(",", ":"))

    def from_subnet(self, subnet: Mapping[str, Any]) -> Architecture:
        """Architecture of a `full_subnet` dict; `_missing_exits` decides a plain OFA subnet.

        Raises:
            NasxError: ``subnet`` is not such a dict, or holds a value outside the space.
        """
        if not isinstance(subnet, Mapping):
            raise NasxError(f"cannot read subnet {subnet!r}: {self._form()}")
        rest = dict(subnet)
        values = rest.pop(self.exit_key, None)
        backbone = super().from_subnet(rest).genes
        exits = self._missing_exits() if values is None else self._exit_genes_of(values)
        arch = Architecture(backbone[:BACKBONE_GENES] + exits + backbone[BACKBONE_GENES:])
        self._check_exits(arch)
        return arch

    def _exit_genes_of(self, values: Any) -> tuple[int, ...]:
        """Gene indices of the exit values ``values`` (the subnet's `exit_key` list)."""
        allowed = [_json_number(v) for v in self.exit_values]
        bad = NasxError(
            f"subnet {self.exit_key}={values!r}: need {N_EXITS} values in {allowed}, one per "
            f"exit position after stages 1..{N_EXITS}; {self._form()}"
        )
        if not isinstance(values, (Sequence, np.ndarray)) or isinstance(values, str):
            raise bad
        if len(values) != N_EXITS:  # after the type check: a number has no len
            raise bad
        genes: list[int] = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, Real):
                raise bad
            hits = [i for i, c in enumerate(self.exit_values) if math.isclose(v, c, abs_tol=1e-9)]
            if not hits:
                raise bad
            genes.append(hits[0])
        return tuple(genes)

    @abstractmethod
    def _missing_exits(self) -> tuple[int, ...]:
        """Exit genes of a subnet without `exit_key` (a plain OFA subnet), or a `NasxError`."""

    def _check_exits(self, arch: Architecture) -> None:
        """Raise `NasxError` when a parsed ``arch``'s exits are invalid (default: never)."""

    def _form(self) -> str:
        r = ', "r": R' if self.has_resolution_gene else ""
        allowed = [_json_number(v) for v in self.exit_values]
        return (
            f'expected a {type(self).__name__} subnet: JSON {{"ks": [...], "e": [...], '
            f'"d": [...], "{self.exit_key}": [{N_EXITS} values]{r}}} with d = {N_STAGES} depths '
            f"in {set(DEPTHS)}, ks and e = sum(d) kernels in {set(KERNELS)} and expand ratios in "
            f"{set(EXPANDS)}, {self.exit_key} one value in {allowed} per exit position after "
            f"stages 1..{N_EXITS} ({self._exit_text()}), {self._res_text()}; or the path of a "
            f"file holding it (CNAS's net_<i>.subnet); or the {self.n_var} gene indices"
        )

    @abstractmethod
    def _exit_text(self) -> str:
        """What the exit values mean, for `_form`."""

    # --- files ---------------------------------------------------------------------------
    def reference_files(self, arch: Architecture) -> dict[str, Any]:
        """CNAS's ``net.subnet`` (`full_subnet`) and the backbone's OFA ``net.config``."""
        return {"net.subnet": self.full_subnet(arch), "net.config": self.net_config(arch)}

    def describe(self) -> dict[str, Any]:
        return super().describe() | {
            "space": self.option,
            "exit_key": self.exit_key,
            "exit_values": [_json_number(v) for v in self.exit_values],
            "exit_positions": list(range(1, N_EXITS + 1)),
        }


class EEMobileNetV3Space(_EarlyExitSpace):
    """EDANAS's early-exit space (``eemobilenetv3``, reference §6.3).

    Genes: the 45 backbone genes of `OFAMobileNetV3Space`, then 4 threshold genes (indices into
    `THRESHOLDS` = (0.1, 0.2, 1)), then the resolution gene when ``resolutions`` is a range:
    49 genes at EDANAS's fixed resolution, 50 with the gene. Threshold t_i places an exit after
    stage i with score-margin threshold t_i; t_i = 1 places none. The canonical string is
    `full_subnet`'s JSON, CNAS's config with ``"t": [4 thresholds]``; a plain OFA subnet
    without ``"t"`` parses as the backbone without early exits (t all 1).

    Reference quirk, not reproduced: NasSearchSpace's ``decode`` reads the thresholds from
    ``x[-5:-1]``, right only when a resolution gene is last; at a fixed resolution (EDANAS's
    own runs) that is genes 44..47, one position early (the last expand gene of stage 5 and
    the first three thresholds). Here the threshold genes are always genes 45..48, with or
    without a resolution gene.

    `build_network` is OFA's backbone network, as the parent's; the exit classifiers are built
    around it from `exit_config` by the early-exit network.
    """

    exit_key = "t"
    exit_values = THRESHOLDS
    option = "ee_mbv3"

    def exit_config(self, arch: Architecture) -> ExitConfig:
        """Exits after the stages whose threshold is not 1, with those thresholds."""
        t = [self.exit_values[g] for g in self.exit_genes(arch)]
        on = [i for i, v in enumerate(t) if v != NO_EXIT]
        return ExitConfig(
            stages=tuple(i + 1 for i in on),
            thresholds=tuple(t[i] for i in on),
            depths=self.depths_of(arch),
        )

    def _missing_exits(self) -> tuple[int, ...]:
        """No early exit: t all 1 (a plain OFA subnet is the single-exit backbone)."""
        return (THRESHOLDS.index(NO_EXIT),) * N_EXITS

    def _exit_text(self) -> str:
        return "1 = no exit; left out: no early exits"

    def extremes(self) -> list[Architecture]:
        """The smallest backbone with every exit at threshold 0.1, the largest with none.

        Most samples leave a 0.1 exit early, so the first is the cheapest EENN in average
        MACs, and the second the costliest (the largest backbone, every sample to the end).
        NasSearchSpace's ``initialize`` pairs them the same way (``t=[min]`` / ``t=[max]``).
        """
        return super().extremes()


class NachosMobileNetV3Space(_EarlyExitSpace):
    """NACHOS's early-exit space (``cbnmobilenetv3``, reference §6.4).

    Genes: the 45 backbone genes of `OFAMobileNetV3Space`, then 4 exit switches b_i in {0, 1}
    (1: an exit after stage i, as ``get_eenn`` places them), then the resolution gene when
    ``resolutions`` is a range (NACHOS's runs use a fixed 32, or 160 on Imagenette): 49 or 50
    genes. The canonical string is `full_subnet`'s JSON, CNAS's config with ``"b": [4 bits]``.
    The exit thresholds are not genes: NACHOS tunes them after training the exits
    (`ExitConfig.thresholds` is ``None``).

    At least one exit is on:

    * `sample` redraws the four switches while they are all 0, as NasSearchSpace rejects that
      vector, so each of the 15 valid patterns is equally likely;
    * `_repair` (after mutation, crossover and `decode`) switches one exit on in an all-zero
      vector: one drawn uniformly from the caller's generator, or, without one (`decode`), the
      exit after stage 4, the valid network nearest to the single-exit one;
    * a subnet string with ``"b": [0, 0, 0, 0]``, or a plain OFA subnet without ``"b"``, is
      refused: it names no valid NACHOS network, and guessing exits would hide the mistake.

    `build_network` is OFA's backbone network, as the parent's; the exit classifiers are built
    around it from `exit_config` by the early-exit network.
    """

    exit_key = "b"
    exit_values = (0, 1)
    option = "nachos_mbv3"

    def exit_config(self, arch: Architecture) -> ExitConfig:
        """Exits after the stages whose switch is 1; thresholds are tuned later (``None``)."""
        b = self.exit_genes(arch)
        return ExitConfig(
            stages=tuple(i + 1 for i, on in enumerate(b) if on),
            thresholds=None,
            depths=self.depths_of(arch),
        )

    def sample(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random architecture with at least one exit (all-zero switches redrawn)."""
        genes = rng.integers(self.lower, self.upper + 1)
        while not genes[EXIT_GENES].any():
            genes[EXIT_GENES] = rng.integers(0, 2, size=N_EXITS)
        return self._repair(Architecture(tuple(int(g) for g in genes)), rng)

    def _repair(self, arch: Architecture, rng: np.random.Generator | None) -> Architecture:
        """The parent's repair, then one exit on when none is: random with ``rng``, else stage 4."""
        genes = list(super()._repair(arch, rng).genes)
        if not any(genes[EXIT_GENES]):
            stage = N_EXITS if rng is None else int(rng.integers(1, N_EXITS + 1))
            genes[BACKBONE_GENES + stage - 1] = 1
        return Architecture(tuple(genes))

    def _missing_exits(self) -> tuple[int, ...]:
        raise NasxError(
            f'a {type(self).__name__} subnet needs "b": [4 exit switches] with at least one 1 '
            '(e.g. "b": [0, 1, 1, 0]); a plain OFA subnet has no early exit and is not a NACHOS '
            "network"
        )

    def _check_exits(self, arch: Architecture) -> None:
        if not any(self.exit_genes(arch)):
            raise NasxError(
                'subnet "b": [0, 0, 0, 0] places no early exit: NACHOS needs at least one 1 '
                "(an exit after that stage)"
            )

    def _exit_text(self) -> str:
        return "1 = an exit after that stage, at least one 1"

    def extremes(self) -> list[Architecture]:
        """The smallest backbone with all four exits, the largest with only the stage-4 exit.

        The first is the cheapest EENN in average MACs; the second is the costliest valid one
        (at least one exit is required, and the latest lets the fewest samples leave early).
        NasSearchSpace's ``initialize`` asks for all-zero switches for the smallest network,
        which its own sampler can never return.
        """
        small, large = self.lower.copy(), self.upper.copy()
        small[EXIT_GENES] = 1
        large[EXIT_GENES] = [0] * (N_EXITS - 1) + [1]
        return [self.decode(small), self.decode(large)]
