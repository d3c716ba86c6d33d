"""The pipeline's stages, one module each (importing this package registers them all)."""

from nasx.stages import correlate as _correlate  # noqa: F401  (registration)
from nasx.stages import nas_dataset as _nas_dataset  # noqa: F401  (registration)
from nasx.stages import profile as _profile  # noqa: F401  (registration)
from nasx.stages import report as _report  # noqa: F401  (registration)
from nasx.stages import retrain as _retrain  # noqa: F401  (registration)
from nasx.stages import search as _search  # noqa: F401  (registration)
from nasx.stages import select as _select  # noqa: F401  (registration)
from nasx.stages import supernet as _supernet  # noqa: F401  (registration)
from nasx.stages.base import Stage as Stage
from nasx.stages.base import register_stage as register_stage
from nasx.stages.base import stage_names as stage_names
from nasx.stages.base import stages_in_order as stages_in_order
from nasx.stages.context import RunContext as RunContext

__all__ = ["RunContext", "Stage", "register_stage", "stage_names", "stages_in_order"]
