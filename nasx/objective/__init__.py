"""Costs and constraints (config group ``objective``)."""

from nasx.objective.activations import ActivationsObjective as ActivationsObjective
from nasx.objective.activations import count_activations as count_activations
from nasx.objective.avg_macs import AvgMacsObjective as AvgMacsObjective
from nasx.objective.base import MeasuredObjective as MeasuredObjective
from nasx.objective.base import Objective as Objective
from nasx.objective.feasibility import check_feasible as check_feasible
from nasx.objective.latency import LatencyObjective as LatencyObjective
from nasx.objective.lut import load_lut as load_lut
from nasx.objective.lut import measure_lut as measure_lut
from nasx.objective.profile import FlopsObjective as FlopsObjective
from nasx.objective.profile import ParamsObjective as ParamsObjective
from nasx.objective.tiny_ml import TinyMLObjective as TinyMLObjective
from nasx.objective.tiny_ml import tiny_ml as tiny_ml

__all__ = [
    "ActivationsObjective",
    "AvgMacsObjective",
    "FlopsObjective",
    "LatencyObjective",
    "MeasuredObjective",
    "Objective",
    "ParamsObjective",
    "TinyMLObjective",
    "check_feasible",
    "count_activations",
    "load_lut",
    "measure_lut",
    "tiny_ml",
]
