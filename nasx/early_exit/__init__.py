"""Early-exit networks (EENNs) of EDANAS and NACHOS on the once-for-all MobileNetV3 backbone."""

from nasx.early_exit.rules import RULES as RULES
from nasx.early_exit.rules import CumulativeRule as CumulativeRule
from nasx.early_exit.rules import MarginRule as MarginRule
from nasx.early_exit.rules import assign_exits as assign_exits
from nasx.early_exit.rules import avg_macs as avg_macs
from nasx.early_exit.rules import exit_ratios as exit_ratios
from nasx.early_exit.rules import make_rule as make_rule
from nasx.early_exit.rules import score_margin as score_margin

__all__ = [
    "RULES",
    "CumulativeRule",
    "MarginRule",
    "assign_exits",
    "avg_macs",
    "exit_ratios",
    "make_rule",
    "score_margin",
]
