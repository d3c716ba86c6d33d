"""NAG cells as values: the vertex-op DAG, its gene layout, pruning and the reference's forms.

A cell has vertices ``[input0, input1, v_2, ..., v_{n-2}, output]`` in topological order
(reference seed-nag.md §1.1). Intermediate vertices carry one of five operations and take the
sum of their predecessors; the output concatenates its predecessors (§1.2).

Gene layout of one cell, for ``max_vertices`` V (slots ``t = 2 .. V-2``): per slot an op gene
(0 = no vertex, 1..5 = `OPS`) followed by ``t`` predecessor bits (vertices ``0 .. t-1``), then
``V-1`` predecessor bits of the output (vertices ``0 .. V-2``). With V = 10 that is
7 + (2 + ... + 8) + 9 = 51 genes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: the five vertex operations (§1.1) by short name; op gene k is ``OPS[k - 1]``
OPS: tuple[str, ...] = ("sep3", "sep5", "avg3", "max3", "id")
#: the reference's names of `OPS` (``build_nas_dataset.py:45``)
REF_OPS: tuple[str, ...] = ("seqconv3x3", "seqconv5x5", "avgpool3x3", "maxpool3x3", "identity")
#: the 8-entry vertex vocabulary of the one-hot encoding (§1.1, ``utils.py:10-19``)
VOCAB: tuple[str, ...] = ("output", "input0", "input1", *REF_OPS)
#: every accepted op spelling -> short name
OP_ALIASES: dict[str, str] = {n: n for n in OPS} | dict(zip(REF_OPS, OPS, strict=True))


@dataclass(frozen=True)
class CellSpec:
    """One cell: ``ops[k]`` is vertex ``k + 2``; ``preds[k]`` its sorted predecessors.

    ``preds`` has one entry more than ``ops``: the last is the output's. A canonical cell
    (`canonical_cell`) has no vertex that is unreachable from the inputs or does not reach
    the output, and an output with at least one predecessor; both inputs always stay.
    """

    ops: tuple[str, ...]
    preds: tuple[tuple[int, ...], ...]

    @property
    def n(self) -> int:
        """Number of vertices, inputs and output included."""
        return len(self.ops) + 3

    @property
    def out_preds(self) -> tuple[int, ...]:
        """The vertices the output concatenates (its channels are ``C * len(out_preds)``)."""
        return self.preds[-1]

    def uses_input(self, k: int) -> bool:
        """Whether input ``k`` (0 or 1) feeds any vertex."""
        return any(k in p for p in self.preds)


def cell_genes(max_vertices: int) -> int:
    """Genes of one cell: ``(V - 3)`` op genes, ``2 + ... + (V - 2)`` and ``V - 1`` edge bits."""
    v = max_vertices
    return (v - 3) + sum(range(2, v - 1)) + (v - 1)


def canonical_cell(genes: Sequence[int], max_vertices: int) -> tuple[CellSpec, bool]:
    """The canonical cell of one cell's genes, and whether its output had a live predecessor.

    Edges of absent slots are dropped; vertices not both reachable from the inputs and able to
    reach the output are pruned, **never the inputs** (the reference also deletes an input
    that does not reach the output and shifts the indices, seed-nag.md §3.6/§8.3); the live
    vertices keep their order and move to the lowest slots. An output left without
    predecessors is fed by input1 (the cell passes s_{k-1} on); the flag is then ``False``.
    """
    v = max_vertices
    ops: dict[int, int] = {}
    preds: dict[int, set[int]] = {}
    i = 0
    for t in range(2, v - 1):
        op, bits = int(genes[i]), genes[i + 1 : i + 1 + t]
        i += 1 + t
        if op:
            ops[t] = op
            preds[t] = {p for p in range(t) if bits[p]}
    out = {p for p in range(v - 1) if genes[i + p]}
    fwd = {0, 1}
    for t in sorted(ops):
        if preds[t] & fwd:
            fwd.add(t)
    bwd = set(out)
    for t in sorted(ops, reverse=True):
        if t in bwd or any(t in preds[s] for s in bwd if s in preds):
            bwd.add(t)
    live = [t for t in sorted(ops) if t in fwd and t in bwd]
    index = {0: 0, 1: 1} | {t: k + 2 for k, t in enumerate(live)}
    new_preds = [tuple(sorted(index[p] for p in preds[t] if p in index)) for t in live]
    out_live = tuple(sorted(index[p] for p in out if p in index))
    spec = CellSpec(
        tuple(OPS[ops[t] - 1] for t in live), (*new_preds, out_live if out_live else (1,))
    )
    return spec, bool(out_live)


def encode_cell(spec: CellSpec, max_vertices: int) -> list[int]:
    """The genes of ``spec`` (vertex ``k`` in slot ``k``; later slots empty)."""
    v = max_vertices
    if spec.n > v:
        raise ValueError(f"a cell of {spec.n} vertices does not fit max_vertices={v}")
    genes: list[int] = []
    for t in range(2, v - 1):
        k = t - 2
        if k < len(spec.ops):
            genes.append(OPS.index(spec.ops[k]) + 1)
            genes += [int(p in spec.preds[k]) for p in range(t)]
        else:
            genes += [0] * (t + 1)
    genes += [int(p in spec.out_preds) for p in range(v - 1)]
    return genes


def spec_from_reference(
    matrix: np.ndarray | Sequence[Sequence[int]], ops: Sequence[str]
) -> CellSpec:
    """A cell from the reference's upper-triangular ``matrix[src][dst]`` and op names.

    ``ops`` is ``['input0', 'input1', <op>..., 'output']`` (seed-nag.md §6.1). The cell is
    not pruned here (see `canonical_cell`).

    Raises:
        ValueError: the matrix is not square upper-triangular of ``len(ops)``, the op list is
            malformed, or input0 -> input1 is an edge.
    """
    n = len(ops)
    m = np.asarray(matrix, dtype=np.int64)
    if m.shape != (n, n):
        raise ValueError(f"a {n}-vertex cell needs an {n}x{n} matrix, got shape {m.shape}")
    if np.any(np.tril(m) != 0) or np.any((m != 0) & (m != 1)):
        raise ValueError("the matrix must be 0/1 and strictly upper-triangular ([src][dst])")
    if n < 3 or list(ops[:2]) != ["input0", "input1"] or ops[-1] != "output":
        raise ValueError("ops must read ['input0', 'input1', <op>..., 'output']")
    if m[0, 1]:
        raise ValueError("input0 -> input1 is never an edge (seed-nag.md §1.1)")
    bad = [o for o in ops[2:-1] if o not in OP_ALIASES]
    if bad:
        raise ValueError(f"unknown op {bad[0]!r}; expected one of {', '.join(REF_OPS)}")
    preds = tuple(tuple(int(p) for p in np.flatnonzero(m[:, j])) for j in range(2, n))
    return CellSpec(tuple(OP_ALIASES[o] for o in ops[2:-1]), preds)


def reference_form(spec: CellSpec) -> tuple[np.ndarray, list[str]]:
    """``(matrix[src][dst], ops)`` of ``spec`` as the reference writes a cell (§6.1)."""
    n = spec.n
    m = np.zeros((n, n), dtype=np.int64)
    for j, ps in enumerate(spec.preds, start=2):
        m[list(ps), j] = 1
    ops = ["input0", "input1", *(REF_OPS[OPS.index(o)] for o in spec.ops), "output"]
    return m, ops


def sample_reference_cell(
    rng: np.random.Generator, max_vertices: int
) -> tuple[np.ndarray, list[str]]:
    """One unpruned cell drawn as the reference's ``generate_arch`` does (seed-nag.md §2.3).

    ``n`` in ``3..V`` with weights 1, 8, 16, ..., 2^(V-1) (``[1, 8, ..., 512]`` for V = 10), a
    density ``bias ~ U(0, 1)``, each upper-triangular entry an edge with probability ``bias``
    (input0 -> input1 never), and uniform ops.
    """
    sizes = np.arange(3, max_vertices + 1)
    weights = np.array([1.0] + [2.0 ** (s - 1) for s in sizes[1:]])
    n = int(rng.choice(sizes, p=weights / weights.sum()))
    bias = rng.random()
    m = np.triu(np.floor(rng.random((n, n)) + bias).astype(np.int64), 1)
    m[0, 1] = 0
    ops = ["input0", "input1", *(REF_OPS[int(k)] for k in rng.integers(0, 5, n - 3)), "output"]
    return m, ops
