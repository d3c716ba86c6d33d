"""Costs and constraints (config group ``objective``)."""

from nasx.objective.base import Objective as Objective
from nasx.objective.profile import FlopsObjective as FlopsObjective
from nasx.objective.profile import ParamsObjective as ParamsObjective

__all__ = ["FlopsObjective", "Objective", "ParamsObjective"]
