"""The Lightning shell: training and evaluation loops (the only Lightning imports)."""

import warnings

from nasx.lit.early_exit import EarlyExitLitModule as EarlyExitLitModule
from nasx.lit.early_exit import EarlyExitResult as EarlyExitResult
from nasx.lit.early_exit import train_early_exit as train_early_exit
from nasx.lit.evaluation import LightningRunner as LightningRunner
from nasx.lit.nag import NAGLitModule as NAGLitModule
from nasx.lit.nag import train_generator as train_generator
from nasx.lit.supernet import SupernetLitModule as SupernetLitModule
from nasx.lit.tracking import SearchTracker as SearchTracker

# Lightning 2.6 on torch 2.14 warns once per fit from its own pytree helper (not our code);
# candidate training fits thousands of times, so the line is silenced here
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")

__all__ = [
    "EarlyExitLitModule",
    "EarlyExitResult",
    "LightningRunner",
    "NAGLitModule",
    "SearchTracker",
    "SupernetLitModule",
    "train_early_exit",
    "train_generator",
]
