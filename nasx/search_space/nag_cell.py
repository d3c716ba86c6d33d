"""NAG's cell space: vertex-op DAGs with two inputs, a normal and a reduction cell.

Reference: seed-nag.md §1 (Jing, Xu, Zhang, "A Neural Architecture Generator for Efficient
Search Space", ``kunjing96/NAG``). Encoding and pruning live in `_nag_cell`, the networks in
`_nag_net`; the weight-sharing supernet is `nasx.supernet.nag_cell`.
"""

from __future__ import annotations

import ast
import re
from typing import Any, NamedTuple

import numpy as np

from nasx.errors import NasxError
from nasx.search_space._nag_cell import (
    OP_ALIASES,
    OPS,
    VOCAB,
    CellSpec,
    canonical_cell,
    cell_genes,
    encode_cell,
    reference_form,
    sample_reference_cell,
    spec_from_reference,
)
from nasx.search_space._nag_net import NAGNetwork
from nasx.search_space.base import Architecture, SearchSpace, parse_gene_tuple


def _ref(
    normal: tuple[list[list[int]], list[str]], reduce: tuple[list[list[int]], list[str]]
) -> str:
    return (
        f"normal_matrix = {normal[0]}\nnormal_ops = {normal[1]}\n"
        f"reduce_matrix = {reduce[0]}\nreduce_ops = {reduce[1]}"
    )


_I, _O = ["input0", "input1"], ["output"]
#: published cell pairs in the reference's own form (matrix [src][dst] and ops, normal first):
#: "RS-NAG (high acc)" (seed-nag.md §6.1, ``train_cifar.py:46-64``) and the three ensemble
#: members (§6.2, ``test_ensemble.py:44-91``)
NAMED: dict[str, str] = {
    "NAG_HIGH_ACC": _ref(
        (
            [
                [0, 0, 1, 0, 0, 0, 1, 0, 1],
                [0, 0, 1, 1, 1, 1, 0, 1, 1],
                [0, 0, 0, 0, 0, 0, 0, 1, 1],
                [0, 0, 0, 0, 1, 1, 1, 0, 1],
                [0, 0, 0, 0, 0, 1, 1, 0, 1],
                [0, 0, 0, 0, 0, 0, 0, 1, 0],
                [0, 0, 0, 0, 0, 0, 0, 1, 0],
                [0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0, 0, 0, 0, 0, 0, 0, 0, 0],
            ],
            [*_I, "seqconv3x3", "seqconv5x5", "maxpool3x3", "seqconv5x5", "seqconv5x5"]
            + ["seqconv5x5", *_O],
        ),
        (
            [
                [0, 0, 1, 1, 0, 1],
                [0, 0, 1, 1, 1, 1],
                [0, 0, 0, 1, 0, 1],
                [0, 0, 0, 0, 0, 1],
                [0, 0, 0, 0, 0, 1],
                [0, 0, 0, 0, 0, 0],
            ],
            [*_I, "seqconv5x5", "seqconv3x3", "seqconv5x5", *_O],
        ),
    ),
    "NAG_ENSEMBLE_1": _ref(
        (
            [
                [0, 0, 1, 1, 1, 0, 1, 0],
                [0, 0, 1, 1, 1, 1, 0, 0],
                [0, 0, 0, 1, 0, 1, 1, 0],
                [0, 0, 0, 0, 1, 0, 1, 1],
                [0, 0, 0, 0, 0, 0, 1, 1],
                [0, 0, 0, 0, 0, 0, 1, 0],
                [0, 0, 0, 0, 0, 0, 0, 1],
                [0, 0, 0, 0, 0, 0, 0, 0],
            ],
            [*_I, "seqconv3x3", "avgpool3x3", "maxpool3x3", "maxpool3x3", "maxpool3x3", *_O],
        ),
        ([[0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], [*_I, "maxpool3x3", *_O]),
    ),
    "NAG_ENSEMBLE_2": _ref(
        (
            [[0, 0, 1, 1, 1], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
            [*_I, "seqconv3x3", "avgpool3x3", *_O],
        ),
        ([[0, 0, 1, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], [*_I, "seqconv3x3", *_O]),
    ),
    "NAG_ENSEMBLE_3": _ref(
        (
            [
                [0, 0, 1, 0, 0, 1, 0, 0],
                [0, 0, 1, 1, 1, 1, 1, 1],
                [0, 0, 0, 1, 1, 1, 1, 1],
                [0, 0, 0, 0, 0, 1, 0, 0],
                [0, 0, 0, 0, 0, 1, 0, 0],
                [0, 0, 0, 0, 0, 0, 1, 1],
                [0, 0, 0, 0, 0, 0, 0, 1],
                [0, 0, 0, 0, 0, 0, 0, 0],
            ],
            [*_I, "maxpool3x3", "identity", "seqconv5x5", "maxpool3x3", "seqconv5x5", *_O],
        ),
        (
            [[0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
            [*_I, "maxpool3x3", "maxpool3x3", *_O],
        ),
    ),
}

_CANON = re.compile(
    r"normal\s*=\s*\[(?P<normal>[^\]]*)\]\s*,?\s*reduce\s*=\s*\[(?P<reduce>[^\]]*)\]"
)
_VERTEX = re.compile(r"(\w+)\s*\(([\d,\s]*)\)")
_MATRIX = re.compile(r"\[\s*\[[\d\s,\[\]]*?\]\s*\]")
_OPLIST = re.compile(r"\[\s*['\"]input0['\"][^\]]*\]")


class CellTensors(NamedTuple):
    """One cell as the GAN sees it (seed-nag.md §1.4), padded to ``max_vertices`` V.

    ``edge`` is the V x V float **transposed** adjacency (``edge[dst, src] = 1``,
    lower-triangular), ``node`` the V x 8 float one-hot of the `VOCAB` codes, ``n`` the
    vertex count; rows past ``n`` are zero.
    """

    edge: np.ndarray
    node: np.ndarray
    n: int


class NAGCellSpace(SearchSpace):
    """NAG's space: a normal and a reduction cell, each a DAG of at most ``max_vertices``.

    **Encoding.** ``2 * cell_genes(max_vertices)`` integers (102 for V = 10), the normal
    cell's then the reduction cell's. Per cell, for each intermediate slot t = 2..V-2 an op
    gene (0 no vertex; 1..5 sep3, sep5, avg3, max3, id) followed by t predecessor bits
    (vertices 0..t-1; input0 is 0, input1 is 1), then V-1 output-predecessor bits (vertices
    0..V-2). `_repair` maps every vector to one canonical form: edges of empty slots dropped,
    vertices that are unreachable from the inputs or do not reach the output pruned (the
    inputs never are, the §8.3 fix), live vertices packed into the lowest slots in their
    order, and an output without predecessors fed by input1. Distinct canonical vectors are
    distinct (matrix, ops) cells; orderings of isomorphic DAGs stay distinct, as the
    reference de-duplicates by exact equality (§2.3).

    **Strings.** `to_str` writes ``normal=[sep3(0,1) ... out(0,1,2)] reduce=[...]``: vertex
    2, 3, ... as op(predecessors), then the output. `parse` also reads the reference's form
    (two upper-triangular ``[src][dst]`` matrices and op lists, normal first, as in
    ``train_cifar.py`` and `reference_files`), a gene tuple, and the names of `NAMED`;
    every form is pruned as the reference's ModelSpec does (inputs kept).

    **Networks.** `build_network` is the CIFAR network of §1.3 at ``net_channels`` /
    ``net_cells_per_stage`` (costs, retraining); `build_search_network` the same at the
    supernet's ``channels`` / ``cells_per_stage``, the network that
    `nasx.supernet.nag_cell.NAGCellSupernet` extracts. Departures from the reference's
    ``model.py``: an input no vertex reads gets no calibration layer (the reference builds an
    unused one), and drop path skips stride-1 identities (§1.2.5 quirk). The published cells
    use both inputs, so their parameter counts are the reference's (§6.3).

    Args:
        num_classes: classifier outputs (set from the dataset).
        channels: supernet C (reference: 20, §2.1); even.
        cells_per_stage: supernet N, ``3N + 2`` cells (reference: 3, §2.1).
        image_size: input height and width.
        in_channels: input image channels.
        max_vertices: V, vertices per cell including inputs and output (reference: 10).
        net_channels: C of `build_network` (``None``: ``channels``; §5.1 retrains at 36).
        net_cells_per_stage: N of `build_network` (``None``: ``cells_per_stage``; §5.1: 6).
        dropout: dropout before `build_network`'s classifier (§5.1 keep_prob 0.6: 0.4).
        sample_same_cells: `sample` uses the sampled normal cell as the reduction cell too,
            as the reference's NAS dataset does by mistake (§8.1, ``build_nas_dataset.py:558``);
            ``False`` (default) samples both.
    """

    def __init__(
        self,
        num_classes: int = 10,
        channels: int = 20,
        cells_per_stage: int = 3,
        image_size: int = 32,
        in_channels: int = 3,
        max_vertices: int = 10,
        net_channels: int | None = None,
        net_cells_per_stage: int | None = None,
        dropout: float = 0.0,
        sample_same_cells: bool = False,
    ) -> None:
        net_c = channels if net_channels is None else net_channels
        net_n = cells_per_stage if net_cells_per_stage is None else net_cells_per_stage
        checks = (
            (num_classes >= 1 and in_channels >= 1, "num_classes and in_channels must be >= 1"),
            (channels >= 2 and channels % 2 == 0, f"channels must be even >= 2, got {channels}"),
            (net_c >= 2 and net_c % 2 == 0, f"net_channels must be even >= 2, got {net_c}"),
            (min(cells_per_stage, net_n) >= 1, "cells_per_stage and net_cells_per_stage >= 1"),
            (image_size >= 4, f"image_size must be >= 4, got {image_size}"),
            (max_vertices >= 3, f"max_vertices must be >= 3, got {max_vertices}"),
            (0 <= dropout < 1, f"dropout must be in [0, 1), got {dropout}"),
        )
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"space: {msg}")
        self.num_classes, self.in_channels = num_classes, in_channels
        self.channels, self.cells_per_stage = channels, cells_per_stage
        self.net_channels, self.net_cells_per_stage = net_c, net_n
        self.max_vertices, self.dropout = max_vertices, float(dropout)
        self.sample_same_cells = bool(sample_same_cells)
        self.input_shape = (in_channels, image_size, image_size)
        self.cell_genes = cell_genes(max_vertices)
        upper: list[int] = []
        for t in range(2, max_vertices - 1):
            upper += [len(OPS)] + [1] * t
        upper += [1] * (max_vertices - 1)
        self.lower = np.zeros(2 * self.cell_genes, dtype=int)
        self.upper = np.array(upper + upper, dtype=int)

    # --- values --------------------------------------------------------------------------
    def cells(self, arch: Architecture) -> tuple[CellSpec, CellSpec]:
        """The (normal, reduction) cells of a canonical ``arch``."""
        g, k = arch.genes, self.cell_genes
        return (
            canonical_cell(g[:k], self.max_vertices)[0],
            canonical_cell(g[k:], self.max_vertices)[0],
        )

    def from_cells(self, normal: CellSpec, reduce: CellSpec) -> Architecture:
        """The canonical architecture of two cells (pruned; ``NasxError`` if one is too big)."""
        genes: list[int] = []
        for name, spec in (("normal", normal), ("reduce", reduce)):
            if spec.n > self.max_vertices:
                raise NasxError(
                    f"the {name} cell has {spec.n} vertices; space.max_vertices is "
                    f"{self.max_vertices}"
                )
            genes += encode_cell(spec, self.max_vertices)
        return self._repair(Architecture(tuple(genes)), None)

    def _repair(self, arch: Architecture, rng: np.random.Generator | None) -> Architecture:
        """The canonical form of each cell (deterministic; ``rng`` is not used)."""
        k, v = self.cell_genes, self.max_vertices
        genes: list[int] = []
        for half in (arch.genes[:k], arch.genes[k:]):
            genes += encode_cell(canonical_cell(half, v)[0], v)
        return Architecture(tuple(genes))

    def sample(self, rng: np.random.Generator) -> Architecture:
        """Two independent cells drawn as the reference's ``generate_arch`` (§2.3), pruned.

        A cell whose output no live vertex feeds is drawn again, as the reference rejects
        it. Both cells are sampled; with ``sample_same_cells`` the normal cell is used twice,
        as in the reference's dataset (§8.1).
        """
        specs = []
        for _ in range(1 if self.sample_same_cells else 2):
            for _ in range(1000):
                spec = spec_from_reference(*sample_reference_cell(rng, self.max_vertices))
                spec, ok = canonical_cell(encode_cell(spec, self.max_vertices), self.max_vertices)
                if ok:
                    break
            specs.append(spec)
        return self.from_cells(specs[0], specs[-1])

    def to_str(self, arch: Architecture) -> str:
        parts = []
        for name, spec in zip(("normal", "reduce"), self.cells(arch), strict=True):
            verts = [
                f"{op}({','.join(map(str, p))})"
                for op, p in zip(spec.ops, spec.preds[:-1], strict=True)
            ]
            verts.append(f"out({','.join(map(str, spec.out_preds))})")
            parts.append(f"{name}=[{' '.join(verts)}]")
        return " ".join(parts)

    def _parse(self, text: str) -> Architecture:
        """The canonical string, the reference's matrices and op lists, or a gene tuple."""
        form = (
            "expected 'normal=[sep3(0,1) ... out(0,2)] reduce=[...]' (ops "
            f"{', '.join(OPS)}), two reference cells (matrix [[...]] [src][dst] and ops "
            f"['input0', 'input1', ..., 'output'], normal first), or {2 * self.cell_genes} "
            "gene integers"
        )
        try:
            found = _CANON.search(text)
            if found is not None:
                return self.from_cells(
                    self._canonical_cell(found["normal"]), self._canonical_cell(found["reduce"])
                )
            mats, ops = _MATRIX.findall(text), _OPLIST.findall(text)
            if mats or ops:
                if len(mats) != 2 or len(ops) != 2:
                    raise ValueError(f"found {len(mats)} matrices and {len(ops)} op lists, not 2")
                specs = [
                    spec_from_reference(ast.literal_eval(m), ast.literal_eval(o))
                    for m, o in zip(mats, ops, strict=True)
                ]
                return self.from_cells(specs[0], specs[1])
        except (ValueError, SyntaxError) as err:
            raise NasxError(f"cannot parse architecture {text!r}: {err}; {form}") from err
        genes = parse_gene_tuple(text, 2 * self.cell_genes)
        if genes is None or np.any(np.asarray(genes) > self.upper):
            raise NasxError(f"cannot parse architecture {text!r}: {form}")
        return self._repair(Architecture(genes), None)

    @staticmethod
    def _canonical_cell(body: str) -> CellSpec:
        verts = _VERTEX.findall(body)
        if not verts or _VERTEX.sub("", body).strip(" ,") or verts[-1][0] != "out":
            raise ValueError(f"a cell is 'op(preds) ... out(preds)', got {body!r}")
        ops, preds = [], []
        for k, (name, args) in enumerate(verts):
            ps = tuple(sorted({int(a) for a in args.replace(",", " ").split()}))
            if not ps or ps[-1] >= k + 2:
                raise ValueError(f"vertex {k + 2} ({name}) needs predecessors below {k + 2}")
            if k < len(verts) - 1:
                if name not in OP_ALIASES:
                    raise ValueError(f"unknown op {name!r}")
                ops.append(OP_ALIASES[name])
            preds.append(ps)
        return CellSpec(tuple(ops), tuple(preds))

    def named_architectures(self) -> dict[str, str]:
        """``NAG_HIGH_ACC`` (§6.1) and ``NAG_ENSEMBLE_1..3`` (§6.2), where they fit V."""
        return {
            k: t
            for k, t in NAMED.items()
            if max(len(ast.literal_eval(o)) for o in _OPLIST.findall(t)) <= self.max_vertices
        }

    def extremes(self) -> list[Architecture]:
        """The empty cell pair (output = input1), then every op on a complete DAG.

        Complete DAGs (every slot, every edge) of max3, avg3, id, sep3 and sep5; all-sep5 is
        the largest network, the empty pair the smallest.
        """
        out = [self.decode(self.lower)]
        for op in ("max3", "avg3", "id", "sep3", "sep5"):
            genes = np.where(self.upper == len(OPS), OPS.index(op) + 1, self.upper)
            arch = self.decode(genes)
            if arch not in out:
                out.append(arch)
        return out

    # --- the reference's forms -----------------------------------------------------------
    def graphs(self, arch: Architecture) -> tuple[CellTensors, CellTensors]:
        """The (normal, reduction) cells of ``arch`` as `CellTensors`: the GAN's encoding (§1.4)."""
        v = self.max_vertices
        out = []
        for spec in self.cells(arch):
            m, ops = reference_form(spec)
            edge = np.zeros((v, v), dtype=np.float32)
            edge[: spec.n, : spec.n] = m.T
            node = np.zeros((v, len(VOCAB)), dtype=np.float32)
            node[np.arange(spec.n), [VOCAB.index(o) for o in ops]] = 1.0
            out.append(CellTensors(edge, node, spec.n))
        return out[0], out[1]

    def from_graphs(self, graphs: tuple[CellTensors, CellTensors]) -> Architecture:
        """Inverse of `graphs`, as the reference's ``graph2arch`` decodes generated graphs.

        Per cell: the first ``n`` rows, edges ``> 0.5`` transposed back to ``[src][dst]``, the
        argmax vertex type; then pruned. Raises `NasxError` when the types do not read
        ``input0, input1, <ops>, output``.
        """
        specs = []
        for g in graphs:
            n = int(g.n)
            m = (np.asarray(g.edge)[:n, :n] > 0.5).astype(np.int64).T
            ops = [VOCAB[int(i)] for i in np.asarray(g.node)[:n].argmax(1)]
            try:
                specs.append(spec_from_reference(np.triu(m, 1), ops))
            except ValueError as err:
                raise NasxError(f"graph is not a NAG cell: {err}") from err
        return self.from_cells(specs[0], specs[1])

    def reference_files(self, arch: Architecture) -> dict[str, Any]:
        """``nag_cells.json``: both cells as the reference writes them (matrix + ops)."""
        out: dict[str, Any] = {}
        for name, spec in zip(("normal", "reduce"), self.cells(arch), strict=True):
            m, ops = reference_form(spec)
            out[name] = {"matrix": m.tolist(), "ops": ops}
        return {"nag_cells.json": out}

    # --- networks ------------------------------------------------------------------------
    def build_network(self, arch: Architecture) -> NAGNetwork:
        """The §1.3 CIFAR network at ``net_channels`` / ``net_cells_per_stage`` (no aux head)."""
        return self._network(arch, self.net_channels, self.net_cells_per_stage, self.dropout)

    def build_retrain_network(self, arch: Architecture, auxiliary: bool = False) -> NAGNetwork:
        """`build_network` with the auxiliary head after cell 2N+1 when asked (§1.3, §5.1)."""
        return self._network(
            arch, self.net_channels, self.net_cells_per_stage, self.dropout, auxiliary
        )

    def build_search_network(self, arch: Architecture) -> NAGNetwork:
        """The network at the supernet's C and N: what the supernet's `extract` returns."""
        return self._network(arch, self.channels, self.cells_per_stage, 0.0)

    def _network(
        self, arch: Architecture, c: int, n: int, dropout: float, auxiliary: bool = False
    ) -> NAGNetwork:
        return NAGNetwork(
            self.cells(arch), c, n, self.in_channels, self.num_classes, dropout, auxiliary
        )

    def describe(self) -> dict[str, Any]:
        return {
            "space": "nag_cell",
            "channels": self.channels,
            "cells_per_stage": self.cells_per_stage,
            "image_size": self.input_shape[1],
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "max_vertices": self.max_vertices,
            "net_channels": self.net_channels,
            "net_cells_per_stage": self.net_cells_per_stage,
            "dropout": self.dropout,
        } | ({"sample_same_cells": True} if self.sample_same_cells else {})
