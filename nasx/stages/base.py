"""The stage contract and registry: one module per stage, each declaring what marks it done.

A run is the stages named in ``stages=[...]``, executed in their registered order. A stage is
skipped when its outputs already exist (resume); adding a stage is one module with a
`Stage` subclass decorated by `register_stage`, and its config node if it has settings.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from nasx.errors import NasxError

if TYPE_CHECKING:
    from nasx.stages.context import RunContext

log = logging.getLogger(__name__)


class Stage(ABC):
    """Base class of every stage.

    Class attributes say what the pipeline prepares: `order` places it in a run,
    `rank_zero_only` keeps it off the other DDP ranks (only supernet training runs on all).
    `outputs` names the files that mark it done; `done` and `result` read them.
    """

    name: ClassVar[str]
    order: ClassVar[int]
    rank_zero_only: ClassVar[bool] = True

    @abstractmethod
    def outputs(self, run: RunContext) -> list[Path]:
        """The files whose presence means the stage has finished in ``run.run_dir``."""

    def done(self, run: RunContext) -> bool:
        """Whether the stage has finished (its outputs exist)."""
        return all(p.exists() for p in self.outputs(run))

    def result(self, run: RunContext) -> dict[str, Any]:
        """The summary of a finished stage (the first output when it is JSON, else paths)."""
        first = self.outputs(run)[0]
        if first.suffix == ".json":
            return dict(json.loads(first.read_text()))
        return {"outputs": [str(p) for p in self.outputs(run)]}

    @abstractmethod
    def run(self, run: RunContext) -> dict[str, Any]:
        """Do the stage's work, write its outputs, return its summary."""


_T = TypeVar("_T", bound=type[Stage])
_REGISTRY: dict[str, type[Stage]] = {}


def register_stage(cls: _T) -> _T:
    """Class decorator: make ``cls`` available as ``stages=[<cls.name>]``."""
    _REGISTRY[cls.name] = cls
    return cls


def stage_names() -> list[str]:
    """Registered stage names in run order."""
    import nasx.stages  # noqa: F401  (registration)

    return [c.name for c in sorted(_REGISTRY.values(), key=lambda c: c.order)]


def stages_in_order(names: list[str]) -> list[Stage]:
    """Instances of the named stages in run order; an unknown name is a `NasxError`."""
    known = stage_names()
    for name in names:
        if name not in known:
            raise NasxError(
                f"stages=[...] names an unknown stage {name!r}: use any of {', '.join(known)}"
            )
    return [_REGISTRY[n]() for n in known if n in names]


def registered(name: str) -> Callable[[], Stage]:
    """The class of a registered stage (for tests and extensions)."""
    stage_names()
    return _REGISTRY[name]
