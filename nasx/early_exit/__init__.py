"""Early-exit networks (EENNs) of EDANAS and NACHOS on the once-for-all MobileNetV3 backbone."""

from nasx.early_exit.export import EarlyExitInference as EarlyExitInference
from nasx.early_exit.export import load_eenn as load_eenn
from nasx.early_exit.heads import HeadCost as HeadCost
from nasx.early_exit.heads import build_exit_head as build_exit_head
from nasx.early_exit.heads import head_cost as head_cost
from nasx.early_exit.losses import NachosLoss as NachosLoss
from nasx.early_exit.losses import bce_regulariser as bce_regulariser
from nasx.early_exit.losses import binary_outputs as binary_outputs
from nasx.early_exit.losses import classification_loss as classification_loss
from nasx.early_exit.losses import energy_loss as energy_loss
from nasx.early_exit.losses import exit_probabilities as exit_probabilities
from nasx.early_exit.losses import joint_loss as joint_loss
from nasx.early_exit.losses import nachos_loss as nachos_loss
from nasx.early_exit.losses import support_loss as support_loss
from nasx.early_exit.losses import support_matrix as support_matrix
from nasx.early_exit.network import EarlyExitNetwork as EarlyExitNetwork
from nasx.early_exit.network import EarlyExitOutput as EarlyExitOutput
from nasx.early_exit.recipe import EarlyExitRecipe as EarlyExitRecipe
from nasx.early_exit.recipe import ExitNetwork as ExitNetwork
from nasx.early_exit.rules import RULES as RULES
from nasx.early_exit.rules import CumulativeRule as CumulativeRule
from nasx.early_exit.rules import MarginRule as MarginRule
from nasx.early_exit.rules import assign_exits as assign_exits
from nasx.early_exit.rules import avg_macs as avg_macs
from nasx.early_exit.rules import exit_ratios as exit_ratios
from nasx.early_exit.rules import make_rule as make_rule
from nasx.early_exit.rules import score_margin as score_margin
from nasx.early_exit.support import SupportSplit as SupportSplit
from nasx.early_exit.tuning import EPSILON_GRID as EPSILON_GRID
from nasx.early_exit.tuning import ExitEvaluation as ExitEvaluation
from nasx.early_exit.tuning import TuningResult as TuningResult
from nasx.early_exit.tuning import evaluate_thresholds as evaluate_thresholds
from nasx.early_exit.tuning import exit_ece as exit_ece
from nasx.early_exit.tuning import expected_calibration_error as expected_calibration_error
from nasx.early_exit.tuning import tune_thresholds as tune_thresholds

__all__ = [
    "EarlyExitInference",
    "load_eenn",
    "EPSILON_GRID",
    "RULES",
    "CumulativeRule",
    "EarlyExitNetwork",
    "EarlyExitOutput",
    "EarlyExitRecipe",
    "ExitEvaluation",
    "ExitNetwork",
    "HeadCost",
    "MarginRule",
    "NachosLoss",
    "SupportSplit",
    "TuningResult",
    "assign_exits",
    "avg_macs",
    "bce_regulariser",
    "binary_outputs",
    "build_exit_head",
    "classification_loss",
    "energy_loss",
    "evaluate_thresholds",
    "exit_ece",
    "exit_probabilities",
    "exit_ratios",
    "expected_calibration_error",
    "head_cost",
    "joint_loss",
    "make_rule",
    "nachos_loss",
    "score_margin",
    "support_loss",
    "support_matrix",
    "tune_thresholds",
]
