"""Render a `Diagram` with matplotlib only (no graphviz): nodes in topological columns."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402

from nasx.diagrams.spec import BlockStrip, CellGraph, Diagram  # noqa: E402

#: horizontal distance between columns and vertical distance between nodes of one column
_COL, _ROW = 2.6, 1.2
#: node face colours by kind
_NODE_COLOURS = {"input": "#cfe2f3", "output": "#d9ead3", "op": "#fff2cc", "node": "#eeeeee"}


def layers(graph: CellGraph) -> dict[int, int]:
    """Column of each node: inputs 0, outputs last, the rest their longest path from an input."""
    preds: dict[int, list[int]] = {n.id: [] for n in graph.nodes}
    for e in graph.edges:
        preds[e.dst].append(e.src)
    kind = {n.id: n.kind for n in graph.nodes}
    col: dict[int, int] = {}

    def depth(v: int, seen: frozenset[int] = frozenset()) -> int:
        if v not in col:
            inner = [p for p in preds[v] if kind[p] != "output" and p not in seen]
            if kind[v] == "input" or not inner:
                col[v] = 0 if kind[v] == "input" else 1
            else:
                col[v] = 1 + max(depth(p, seen | {v}) for p in inner)
        return col[v]

    for n in graph.nodes:
        if n.kind != "output":
            depth(n.id)
    last = max((c for v, c in col.items()), default=0) + 1
    for n in graph.nodes:
        if n.kind == "output":
            col[n.id] = last
    return col


def _positions(graph: CellGraph) -> dict[int, tuple[float, float]]:
    """``(x, y)`` of each node: its column, spread vertically and centred within the column.

    Within a column, nodes are ordered by the mean height of their predecessors (one
    left-to-right barycentre pass), which removes most edge crossings.
    """
    col = layers(graph)
    preds: dict[int, list[int]] = {n.id: [] for n in graph.nodes}
    for e in graph.edges:
        preds[e.dst].append(e.src)
    by_col: dict[int, list[int]] = {}
    for n in graph.nodes:
        by_col.setdefault(col[n.id], []).append(n.id)
    pos: dict[int, tuple[float, float]] = {}
    for c in sorted(by_col):
        ids = by_col[c]
        if c > 0:
            placed = {v: [pos[p][1] for p in preds[v] if p in pos] for v in ids}
            ids = sorted(ids, key=lambda v: -sum(placed[v]) / len(placed[v]) if placed[v] else 0)
        for i, v in enumerate(ids):
            pos[v] = (_COL * c, _ROW * ((len(ids) - 1) / 2 - i))
    return pos


def _label_point(
    p0: tuple[float, float], p2: tuple[float, float], rad: float, t: float
) -> tuple[float, float]:
    """The point at ``t`` of arc3's quadratic Bezier curve from ``p0`` to ``p2``."""
    (x1, y1), (x2, y2) = p0, p2
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t**2
    return a * x1 + b * cx + c * x2, a * y1 + b * cy + c * y2


def _draw_graph(ax: Axes, graph: CellGraph) -> tuple[float, float]:
    """Draw ``graph`` on ``ax``; returns its vertical extent (bent edges included)."""
    pos = _positions(graph)
    ys = [p[1] for p in pos.values()]
    labels: list[tuple[float, float]] = list(pos.values())  # nodes count as placed labels
    for k, e in enumerate(graph.edges):
        (x1, y1), (x2, y2) = pos[e.src], pos[e.dst]
        dx = x2 - x1
        span = round(abs(dx) / _COL)
        # edges that skip columns bend outwards (away from the nodes between, which sit
        # around the middle); the bend grows with the columns skipped so nested arcs part
        rad = 0.0
        if span > 1 and dx:
            mid = (y1 + y2) / 2
            side = (1 if k % 2 else -1) if abs(mid) < 1e-9 else (1 if mid > 0 else -1)
            between = [y for x, y in pos.values() if min(x1, x2) < x < max(x1, x2)] or [mid]
            # the apex clears the outermost node of the columns skipped
            edge = max(between) if side > 0 else min(between)
            height = side * max(0.6, side * (edge - mid) + 0.6 + 0.45 * (span - 2))
            rad = -2 * height / dx
        # the label where it overlaps the fewest labels and nodes, nearest the curve's middle
        lx, ly = min(
            (_label_point((x1, y1), (x2, y2), rad, t) for t in (0.5, 0.38, 0.62, 0.3, 0.7)),
            key=lambda p: sum(abs(p[0] - ox) < 1.2 and abs(p[1] - oy) < 0.3 for ox, oy in labels),
        )
        if e.label:
            labels.append((lx, ly))
        ys.append(_label_point((x1, y1), (x2, y2), rad, 0.5)[1])
        ax.add_patch(
            FancyArrowPatch(
                (x1, y1),
                (x2, y2),
                connectionstyle=f"arc3,rad={rad}",
                arrowstyle="-|>",
                mutation_scale=12,
                shrinkA=18,
                shrinkB=18,
                color="#555555",
                linestyle="--" if e.dashed else "-",
                lw=1.0,
            )
        )
        if e.label:
            ax.text(
                lx,
                ly,
                e.label,
                fontsize=7,
                ha="center",
                va="center",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.9},
            )
    for n in graph.nodes:
        x, y = pos[n.id]
        ax.text(
            x,
            y,
            n.label,
            fontsize=8,
            ha="center",
            va="center",
            bbox={
                "boxstyle": "round,pad=0.4",
                "fc": _NODE_COLOURS.get(n.kind, "#eeeeee"),
                "ec": "#333333",
            },
        )
    xs = [p[0] for p in pos.values()]
    lo, hi = min(ys) - 0.6, max(ys) + 0.6
    ax.set_xlim(min(xs) - 1.0, max(xs) + 1.0)
    ax.set_ylim(lo, hi)
    ax.set_title(graph.title, fontsize=10)
    ax.axis("off")
    return lo, hi


def _draw_strip(ax: Axes, strip: BlockStrip) -> None:
    n_cols = len(strip.rows[0][1]) if strip.rows else 0
    n_rows = len(strip.rows)
    for r, (name, values) in enumerate(strip.rows):
        y = n_rows - 1 - r
        ax.text(-0.3, y + 0.5, name, ha="right", va="center", fontsize=8)
        for c, value in enumerate(values):
            face = "#f3f3f3" if value in ("", "skip") else _strip_colour(name, value)
            ax.add_patch(Rectangle((c, y), 1, 1, fc=face, ec="white", lw=1.5))
            if value:
                ax.text(c + 0.5, y + 0.5, value, ha="center", va="center", fontsize=7)
    start = 0
    for label, width in strip.groups:
        ax.plot([start + 0.05, start + width - 0.05], [n_rows + 0.15] * 2, color="#333333")
        ax.text(start + width / 2, n_rows + 0.3, label, ha="center", va="bottom", fontsize=7)
        start += width
    ax.set_xlim(-2.0, n_cols + 0.2)
    ax.set_ylim(-0.2, n_rows + 1.0)
    ax.set_title(strip.title, fontsize=10)
    ax.axis("off")


def _strip_colour(row: str, value: str) -> str:
    """A fixed colour per (row, value): larger kernels and expansions are darker."""
    shades = {"3": "#deebf7", "4": "#c6dbef", "5": "#9ecae1", "6": "#6baed6", "7": "#4292c6"}
    if row == "exit":
        return "#fde0dd"
    return shades.get(value, "#e5f5e0")


def draw_diagram(diagram: Diagram, path: str | Path) -> Path:
    """Write ``diagram`` as a PNG at ``path`` (atomically); returns the path."""
    path = Path(path)
    graphs = [p for p in diagram.panels if isinstance(p, CellGraph)]
    strips = [p for p in diagram.panels if isinstance(p, BlockStrip)]
    if graphs:
        widths = [1 + max(layers(g).values(), default=0) for g in graphs]
        fig, axes = plt.subplots(
            1,
            len(graphs),
            figsize=(sum(1.5 * w + 0.6 for w in widths), 3.0),
            dpi=110,
            gridspec_kw={"width_ratios": widths},
            squeeze=False,
        )
        extents = [_draw_graph(ax, g) for ax, g in zip(axes[0], graphs, strict=True)]
        lo, hi = min(e[0] for e in extents), max(e[1] for e in extents)
        for ax in axes[0]:
            ax.set_ylim(lo, hi)  # one vertical scale: the panels' nodes line up
        fig.set_figheight(1.2 + 0.55 * (hi - lo))
    else:
        n_cols = max((len(s.rows[0][1]) for s in strips if s.rows), default=1)
        fig, axes = plt.subplots(
            len(strips),
            1,
            figsize=(max(6.0, 0.42 * n_cols + 1.5), 1.6 + 0.45 * len(strips[0].rows)),
            dpi=110,
            squeeze=False,
        )
        for ax, s in zip(axes[:, 0], strips, strict=True):
            _draw_strip(ax, s)
    fig.suptitle(diagram.title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path
