"""Architecture diagrams: `diagram_spec` (what to draw, per space) and `draw_diagram` (PNG)."""

from __future__ import annotations

from pathlib import Path

from nasx.diagrams.draw import draw_diagram as draw_diagram
from nasx.diagrams.spec import BlockStrip as BlockStrip
from nasx.diagrams.spec import CellGraph as CellGraph
from nasx.diagrams.spec import Diagram as Diagram
from nasx.diagrams.spec import Edge as Edge
from nasx.diagrams.spec import Node as Node
from nasx.diagrams.spec import diagram_spec as diagram_spec
from nasx.search_space.base import Architecture, SearchSpace


def draw_architecture(space: SearchSpace, arch: Architecture, path: str | Path) -> Path | None:
    """Write the diagram of ``arch`` to ``path`` (PNG); ``None`` when the space has none."""
    spec = diagram_spec(space, arch)
    return None if spec is None else draw_diagram(spec, path)


__all__ = [
    "BlockStrip",
    "CellGraph",
    "Diagram",
    "Edge",
    "Node",
    "diagram_spec",
    "draw_architecture",
    "draw_diagram",
]
