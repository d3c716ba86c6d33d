"""nasx entry point: ``python run.py search=nsga metric=flatness`` (Hydra)."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

import nasx.config  # noqa: F401  (registers the schema and resolvers before Hydra composes)
from nasx.errors import NasxError

log = logging.getLogger("nasx")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Run the configured stages in Hydra's run directory."""
    from nasx.pipeline import current_run_dir, run

    try:
        run(cfg, current_run_dir())
    except NasxError as exc:
        print(f"nasx: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
