"""Hydra callbacks: checks that must run before Hydra creates the output directory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def _make_writable_dir(path: Path) -> str | None:
    """Create ``path`` (Hydra would next) and probe it; the reason it failed, or ``None``."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".nasx_write_probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


class RunDirCheck(Callback):
    """Ends the run with one clear line when the run or sweep directory cannot be written."""

    def _check(self, path: str, key: str) -> None:
        reason = _make_writable_dir(Path(path))
        if reason is not None:
            print(
                f"nasx: error: the output directory {path} is not writable ({reason}): "
                f"choose another with {key}=<path>",
                file=sys.stderr,
            )
            sys.exit(2)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir, "hydra.sweep.dir")
