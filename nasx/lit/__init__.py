"""The Lightning shell: supernet training and evaluation loops (the only Lightning imports)."""

from nasx.lit.evaluation import LightningRunner as LightningRunner
from nasx.lit.supernet import SupernetLitModule as SupernetLitModule
from nasx.lit.tracking import SearchTracker as SearchTracker

__all__ = ["LightningRunner", "SearchTracker", "SupernetLitModule"]
