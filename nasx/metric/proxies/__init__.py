"""Training-free (zero-cost) proxies after NASLib's ``predictors/utils/pruners/measures``."""

from nasx.metric.proxies.activation import EpeNasMetric as EpeNasMetric
from nasx.metric.proxies.activation import JacovMetric as JacovMetric
from nasx.metric.proxies.activation import NwotMetric as NwotMetric
from nasx.metric.proxies.base import ZeroCostMetric as ZeroCostMetric
from nasx.metric.proxies.correlation import MecoMetric as MecoMetric
from nasx.metric.proxies.gradient import FisherMetric as FisherMetric
from nasx.metric.proxies.gradient import GradNormMetric as GradNormMetric
from nasx.metric.proxies.gradient import GraspMetric as GraspMetric
from nasx.metric.proxies.gradient import L2NormMetric as L2NormMetric
from nasx.metric.proxies.gradient import SnipMetric as SnipMetric
from nasx.metric.proxies.gradient import SynflowMetric as SynflowMetric
from nasx.metric.proxies.patterns import SwapMetric as SwapMetric
from nasx.metric.proxies.patterns import SwapRegMetric as SwapRegMetric
from nasx.metric.proxies.size import FlopsMetric as FlopsMetric
from nasx.metric.proxies.size import ParamsMetric as ParamsMetric
from nasx.metric.proxies.zico import ZicoMetric as ZicoMetric

__all__ = [
    "EpeNasMetric",
    "FisherMetric",
    "FlopsMetric",
    "GradNormMetric",
    "GraspMetric",
    "JacovMetric",
    "L2NormMetric",
    "MecoMetric",
    "NwotMetric",
    "ParamsMetric",
    "SnipMetric",
    "SwapMetric",
    "SwapRegMetric",
    "SynflowMetric",
    "ZeroCostMetric",
    "ZicoMetric",
]
