"""Search spaces (config group ``space``)."""

from nasx.search_space.base import Architecture as Architecture
from nasx.search_space.base import SearchSpace as SearchSpace
from nasx.search_space.darts import DartsSpace as DartsSpace
from nasx.search_space.early_exit import EEMobileNetV3Space as EEMobileNetV3Space
from nasx.search_space.early_exit import ExitConfig as ExitConfig
from nasx.search_space.early_exit import NachosMobileNetV3Space as NachosMobileNetV3Space
from nasx.search_space.early_exit import exit_blocks as exit_blocks
from nasx.search_space.mobilenet import MobileNetSpace as MobileNetSpace
from nasx.search_space.nag_cell import NAGCellSpace as NAGCellSpace
from nasx.search_space.nb201 import NB201Space as NB201Space
from nasx.search_space.ofa_mbv3 import OFAMobileNetV3Space as OFAMobileNetV3Space

__all__ = [
    "Architecture",
    "DartsSpace",
    "EEMobileNetV3Space",
    "ExitConfig",
    "MobileNetSpace",
    "NAGCellSpace",
    "NB201Space",
    "NachosMobileNetV3Space",
    "OFAMobileNetV3Space",
    "SearchSpace",
    "exit_blocks",
]
