"""Shared fixtures: Hydra composition of the real conf/ with tiny settings."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import nasx.config  # noqa: F401  (schema + resolvers)

os.environ.setdefault("WANDB_MODE", "disabled")
# generated corruptions (dataset.corruption_cache) go to a per-session folder, not ~/.cache
if "NASX_CACHE" not in os.environ:
    import tempfile

    os.environ["NASX_CACHE"] = tempfile.mkdtemp(prefix="nasx-test-cache-")
ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


@pytest.fixture
def compose_cfg() -> Iterator[Callable[..., DictConfig]]:
    """``compose_cfg(*overrides, hydra=False)``: the root config with overrides (and, with
    ``hydra=True``, its ``hydra`` node: launcher, sweep dir), Hydra cleared after."""

    def _compose(*overrides: str, hydra: bool = False) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(
                config_name="config", overrides=list(overrides), return_hydra_config=hydra
            )

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module of tiny networks, restored after it.

    On 2 shared cores, thread start-up and contention cost tiny networks more than they gain;
    a module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python run.py *args`` as a user would; returns the completed process."""
    env = dict(os.environ, WANDB_MODE="disabled", HYDRA_FULL_ERROR="0")
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
