"""Architecture metrics (config group ``metric``)."""

from nasx.metric.accuracy import AccuracyMetric as AccuracyMetric
from nasx.metric.angle import AngleMetric as AngleMetric
from nasx.metric.base import EvalResult as EvalResult
from nasx.metric.base import EvalRunner as EvalRunner
from nasx.metric.base import Metric as Metric
from nasx.metric.base import MetricContext as MetricContext
from nasx.metric.benchmark import BenchmarkMetric as BenchmarkMetric
from nasx.metric.combined import AccuracyFlatnessMetric as AccuracyFlatnessMetric
from nasx.metric.combined import AngleFlatnessMetric as AngleFlatnessMetric
from nasx.metric.early_exit import EarlyExitMetric as EarlyExitMetric
from nasx.metric.flatness import FlatnessMetric as FlatnessMetric
from nasx.metric.proxies import EpeNasMetric as EpeNasMetric
from nasx.metric.proxies import FisherMetric as FisherMetric
from nasx.metric.proxies import FlopsMetric as FlopsMetric
from nasx.metric.proxies import GradNormMetric as GradNormMetric
from nasx.metric.proxies import GraspMetric as GraspMetric
from nasx.metric.proxies import JacovMetric as JacovMetric
from nasx.metric.proxies import L2NormMetric as L2NormMetric
from nasx.metric.proxies import MecoMetric as MecoMetric
from nasx.metric.proxies import NwotMetric as NwotMetric
from nasx.metric.proxies import ParamsMetric as ParamsMetric
from nasx.metric.proxies import SnipMetric as SnipMetric
from nasx.metric.proxies import SwapMetric as SwapMetric
from nasx.metric.proxies import SwapRegMetric as SwapRegMetric
from nasx.metric.proxies import SynflowMetric as SynflowMetric
from nasx.metric.proxies import ZeroCostMetric as ZeroCostMetric
from nasx.metric.proxies import ZicoMetric as ZicoMetric
from nasx.metric.robustness import RobustnessMetric as RobustnessMetric
from nasx.metric.robustness import Top1RobustMetric as Top1RobustMetric
from nasx.metric.runner import TorchRunner as TorchRunner

__all__ = [
    "AccuracyFlatnessMetric",
    "AccuracyMetric",
    "AngleFlatnessMetric",
    "AngleMetric",
    "BenchmarkMetric",
    "EarlyExitMetric",
    "EpeNasMetric",
    "EvalResult",
    "EvalRunner",
    "FisherMetric",
    "FlatnessMetric",
    "FlopsMetric",
    "GradNormMetric",
    "GraspMetric",
    "JacovMetric",
    "L2NormMetric",
    "MecoMetric",
    "Metric",
    "MetricContext",
    "NwotMetric",
    "ParamsMetric",
    "RobustnessMetric",
    "SnipMetric",
    "SwapMetric",
    "SwapRegMetric",
    "SynflowMetric",
    "Top1RobustMetric",
    "TorchRunner",
    "ZeroCostMetric",
    "ZicoMetric",
]
