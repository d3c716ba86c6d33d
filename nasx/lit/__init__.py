"""The Lightning shell: training and evaluation loops (the only Lightning imports)."""

from nasx.lit.early_exit import EarlyExitLitModule as EarlyExitLitModule
from nasx.lit.early_exit import EarlyExitResult as EarlyExitResult
from nasx.lit.early_exit import train_early_exit as train_early_exit
from nasx.lit.evaluation import LightningRunner as LightningRunner
from nasx.lit.supernet import SupernetLitModule as SupernetLitModule
from nasx.lit.tracking import SearchTracker as SearchTracker

__all__ = [
    "EarlyExitLitModule",
    "EarlyExitResult",
    "LightningRunner",
    "SearchTracker",
    "SupernetLitModule",
    "train_early_exit",
]
