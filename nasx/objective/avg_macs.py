"""``avg_macs``: the average cost per input of an early-exit network (CNAS, EDANAS, NACHOS)."""

from __future__ import annotations

from nasx.objective.base import MeasuredObjective


class AvgMacsObjective(MeasuredObjective):
    """Mean multiply-accumulates (M) an early-exit network spends per validation input.

    ``avg_macs = sum_b w_b * (backbone MACs up to exit b + exit b's classifier MACs)``, ``w_b``
    the share of validation samples leaving at exit b (CNAS ``ee_train.py:451-469``;
    `nasx.early_exit.rules.avg_macs`). It depends on the trained exits and the data, so the
    early-exit metric measures it (`MeasuredObjective`); the surrogate-assisted search
    predicts it with a second surrogate, as CNAS's ``sec_predictor``. With
    ``handling="feasibility"`` and ``upper`` = mmax it is NACHOS's feasibility-weighted MAC
    constraint ``phi * c + (1 - phi) * violation * penalty`` (`Objective.population`).
    """

    name = "avg_macs"
    key = "avg_macs"
