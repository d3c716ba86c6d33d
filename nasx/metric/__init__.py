"""Architecture metrics (config group ``metric``)."""

from nasx.metric.accuracy import AccuracyMetric as AccuracyMetric
from nasx.metric.angle import AngleMetric as AngleMetric
from nasx.metric.base import EvalResult as EvalResult
from nasx.metric.base import EvalRunner as EvalRunner
from nasx.metric.base import Metric as Metric
from nasx.metric.base import MetricContext as MetricContext
from nasx.metric.flatness import FlatnessMetric as FlatnessMetric
from nasx.metric.runner import TorchRunner as TorchRunner

__all__ = [
    "AccuracyMetric",
    "AngleMetric",
    "EvalResult",
    "EvalRunner",
    "FlatnessMetric",
    "Metric",
    "MetricContext",
    "TorchRunner",
]
