"""NAG's conditional graph GAN in plain PyTorch: a DGMG-style generator and a GCN critic.

The generator (`NAGGenerator`, ``generator.py`` of ``kunjing96/NAG``) grows every cell kind
vertex by vertex from ``c = [z ; label embeddings]``: each step propagates the node states
with GRU message passing, reads the graph out with a gated sum, picks the new vertex's type
(output ends the cell) and then an edge from each earlier vertex. The discriminator
(`NAGDiscriminator`, ``discriminator.py``) embeds each cell with a GCN and a gated-sum
readout and scores ``[cells ; label embeddings]`` with an MLP. Hyper-parameters default to
the reference's (§3.2 of the notes).

The discriminator sees generated cells *soft* (softmax type rows, sigmoid edge
probabilities) and real ones one-hot; the hard choices only fix each generated graph's
structure and length, so the generator's gradient flows through the probabilities (§8.7).
``straight_through=True`` shows it the hard choices instead, with the probabilities'
gradient (the reference's commented-out variant).

Deviations from the reference, each a switch:

- the hard choices are *drawn* from the categorical/Bernoulli outputs (``sample=True``; the
  reference takes the argmax and thresholds at 0.5, so its diversity comes only from z and
  the dropout it leaves on, §8.6);
- every new vertex gets at least one predecessor (``connect=True``: the most probable edge
  when none was drawn), so that every pruned cell has an output reachable from an input;
- the space's grammar (`GraphAdapter.allowed_types` / ``allowed_edges``) masks types and
  edges the space cannot have; the default grammar is the reference's own masks (no input
  generated, no input-to-input edge, output forced at the last vertex);
- the critic's head starts Kaiming-initialised (``head_init="kaiming"``): with PyTorch's
  default init it starts nearly constant and stalls at the least-squares saddle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nasx.nag.graph import OUTPUT, CellGraph, GraphAdapter, input_type, prune

_SLOPE = 0.2  # leaky-ReLU slope everywhere in the reference


@dataclass(frozen=True)
class SoftGraphs:
    """A batch of one cell kind in the discriminator's form (padded to ``max_vertices``).

    Attributes:
        types: ``(B, V, n_types)`` type rows, one-hot for real cells and softmax rows for
            generated ones; zero past ``n``.
        adjacency: ``(B, V, V)`` edge weights, ``[b, i, j]`` for ``i -> j`` (upper-triangular):
            0/1 for real cells, edge probabilities for generated ones; zero past ``n``.
        n: ``(B,)`` vertex counts.
    """

    types: torch.Tensor
    adjacency: torch.Tensor
    n: torch.Tensor


@dataclass(frozen=True)
class GeneratedCells:
    """What a `CellGenerator` returns for a batch: soft graphs for D, hard ones to decode.

    Attributes:
        soft: the probabilities (differentiable), in `SoftGraphs` form.
        types: ``(B, V)`` chosen type codes, ``-1`` past ``soft.n``.
        adjacency: ``(B, V, V)`` chosen edges (bool), none past ``soft.n``.
    """

    soft: SoftGraphs
    types: torch.Tensor
    adjacency: torch.Tensor

    def graphs(self, n_inputs: int) -> list[CellGraph]:
        """The chosen graphs, pruned (`nasx.nag.graph.prune`), one per batch row."""
        types, adj, n = self.types.cpu(), self.adjacency.cpu(), self.soft.n.cpu()
        out = []
        for b in range(types.shape[0]):
            k = int(n[b])
            g = CellGraph.from_numpy(types[b, :k].numpy(), adj[b, :k, :k].to(torch.uint8).numpy())
            out.append(prune(g, n_inputs))
        return out


def encode_graphs(
    graphs: Sequence[CellGraph], max_vertices: int, n_types: int, device: torch.device | None = None
) -> SoftGraphs:
    """Real cells in the discriminator's form: one-hot types and 0/1 adjacency, padded."""
    b = len(graphs)
    types = torch.zeros(b, max_vertices, n_types)
    adj = torch.zeros(b, max_vertices, max_vertices)
    n = torch.zeros(b, dtype=torch.long)
    for i, g in enumerate(graphs):
        if g.n_vertices > max_vertices:
            raise ValueError(f"a cell has {g.n_vertices} vertices, more than {max_vertices}")
        t, a = g.to_numpy()
        k = len(t)
        types[i, torch.arange(k), torch.from_numpy(t)] = 1.0
        adj[i, :k, :k] = torch.from_numpy(a).float()
        n[i] = k
    return SoftGraphs(types.to(device), adj.to(device), n.to(device))


class GatedSum(nn.Module):
    """Gated-sum readout ``normalize(sum_v sigmoid(g(h_v)) * f(h_v))`` over masked vertices."""

    def __init__(self, in_size: int, out_size: int) -> None:
        super().__init__()
        self.f = nn.Linear(in_size, out_size)
        self.g = nn.Linear(in_size, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.sigmoid(self.g(h)) * self.f(h)
        if mask is not None:
            x = x * mask.unsqueeze(-1).to(x.dtype)
        return F.normalize(x.sum(1), dim=-1)


class GRUPropagation(nn.Module):
    """Message passing over both edge directions with a GRU update (``GraphEmbed``).

    Per layer: dropout on the node states; the message of an edge is a linear map of
    ``[h_sender ; h_receiver]`` (one map for forward edges, another for reverse ones), summed
    at the receiver; ``GRUCell(message, h)`` updates every vertex of a graph with an edge.
    Graphs without any edge keep their states. The result is L2-normalised.
    """

    def __init__(self, size: int, num_layers: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.size, self.dropout = size, dropout
        self.forward_msg = nn.ModuleList(nn.Linear(2 * size, 2 * size) for _ in range(num_layers))
        self.reverse_msg = nn.ModuleList(nn.Linear(2 * size, 2 * size) for _ in range(num_layers))
        self.gru = nn.ModuleList(nn.GRUCell(2 * size, size) for _ in range(num_layers))

    @staticmethod
    def _messages(lin: nn.Linear, x: torch.Tensor, adj: torch.Tensor, size: int) -> torch.Tensor:
        # sum over senders s of lin([x_s ; x_r]) for each receiver r of adj[:, s, r]
        w_send, w_recv = lin.weight[:, :size], lin.weight[:, size:]
        deg = adj.sum(1).unsqueeze(-1)
        return adj.transpose(1, 2) @ (x @ w_send.T) + deg * (x @ w_recv.T + lin.bias)

    def forward(self, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        active = adj.flatten(1).any(1)
        if not bool(active.any()):
            return F.normalize(h, dim=-1)
        b, v, d = h.shape
        for fwd, rev, gru in zip(self.forward_msg, self.reverse_msg, self.gru, strict=True):
            x = F.dropout(h, self.dropout, self.training)
            msg = self._messages(cast(nn.Linear, fwd), x, adj, d) + self._messages(
                cast(nn.Linear, rev), x, adj.transpose(1, 2), d
            )
            new = gru(msg.reshape(b * v, 2 * d), x.reshape(b * v, d)).reshape(b, v, d)
            h = torch.where(active[:, None, None], new, h)
        return F.normalize(h, dim=-1)


def _draw_categorical(
    probs: torch.Tensor, sample: bool, generator: torch.Generator | None
) -> torch.Tensor:
    if not sample:
        return probs.argmax(-1)
    u = torch.rand(probs.shape[0], generator=generator).to(probs.device)
    cdf = probs.detach().cumsum(-1)
    return (cdf < u.unsqueeze(-1)).sum(-1).clamp(max=probs.shape[-1] - 1)


def _draw_bernoulli(
    probs: torch.Tensor, sample: bool, generator: torch.Generator | None
) -> torch.Tensor:
    if not sample:
        return probs > 0.5
    u = torch.rand(probs.shape, generator=generator).to(probs.device)
    return u < probs.detach()


class CellGenerator(nn.Module):
    """Grows one cell kind vertex by vertex (``Generator`` of the reference; §3.3).

    The ``n_inputs`` input vertices come first; each step then propagates (`GRUPropagation`),
    reads out ``h_G`` and ``h_G_init`` (`GatedSum`), picks a type (inputs masked out;
    ``output`` ends the cell and is forced at vertex ``max_vertices - 1``), initialises the
    new vertex's state, and picks an edge from every earlier vertex.

    Args:
        n_types: vertex vocabulary size (output, inputs, operations).
        n_inputs: input vertices per cell.
        max_vertices: the largest cell (``max_step``).
        cond_size: size of the conditioning vector ``c``.
        emb_size: node-state size ``d`` (``g_emb_size``).
        hidden_size: graph-embedding size ``s`` (``g_hidden_size``).
        num_layers: propagation layers per step (``g_num_layers``).
        dropout: dropout on the node states before each layer (``g_dropout``).
        allowed_types: ``(max_vertices, n_types)`` bool, the types each position may take
            (`GraphAdapter.allowed_types`; ``None``: any but an input). Inputs are never drawn.
        allowed_edges: ``(max_vertices, max_vertices)`` bool, the edges that may be drawn
            (`GraphAdapter.allowed_edges`; ``None``: every forward edge); the others get
            probability 0. Edges between inputs never exist.
    """

    def __init__(
        self,
        n_types: int,
        n_inputs: int,
        max_vertices: int,
        cond_size: int,
        emb_size: int = 250,
        hidden_size: int = 56,
        num_layers: int = 3,
        dropout: float = 0.5,
        allowed_types: np.ndarray | None = None,
        allowed_edges: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        if max_vertices < n_inputs + 1 or n_types < n_inputs + 2:
            raise ValueError("a cell needs its inputs, an output and at least one operation type")
        d, s, c = emb_size, hidden_size, cond_size
        self.n_types, self.n_inputs, self.max_vertices = n_types, n_inputs, max_vertices
        types_ok = torch.ones(max_vertices, n_types, dtype=torch.bool)
        if allowed_types is not None:
            types_ok = torch.as_tensor(np.asarray(allowed_types, dtype=bool))
        types_ok = types_ok.clone()
        types_ok[:, 1 : n_inputs + 1] = False  # inputs are never generated
        if types_ok.shape != (max_vertices, n_types) or not types_ok[n_inputs:].any(1).all():
            raise ValueError(
                f"allowed_types must be {max_vertices}x{n_types} and allow a generated type at "
                "every position past the inputs"
            )
        edges_ok = torch.ones(max_vertices, max_vertices, dtype=torch.bool).triu(1)
        if allowed_edges is not None:
            edges_ok = edges_ok & torch.as_tensor(np.asarray(allowed_edges, dtype=bool))
        edges_ok[:n_inputs, :n_inputs] = False
        self.types_ok: torch.Tensor
        self.edges_ok: torch.Tensor
        self.register_buffer("types_ok", types_ok, persistent=False)
        self.register_buffer("edges_ok", edges_ok, persistent=False)
        self.type_emb = nn.Embedding(n_types, d)
        self.f_start = nn.Linear(d + c, d + s)
        self.f_start_2 = nn.Linear(d + s, d)
        self.propagate = GRUPropagation(d, num_layers, dropout)
        self.readout = GatedSum(d, s)
        self.readout_init = GatedSum(d, s)
        self.add_node = nn.Sequential(
            nn.Linear(c + s, s), nn.LeakyReLU(_SLOPE), nn.Linear(s, n_types)
        )
        self.f_init = nn.Linear(d + s + c, d + s)
        self.f_init_2 = nn.Linear(d + s, d)
        self.add_edge = nn.Sequential(
            nn.Linear(2 * d + s + c, d + s), nn.LeakyReLU(_SLOPE), nn.Linear(d + s, 1)
        )

    def forward(
        self,
        cond: torch.Tensor,
        sample: bool = True,
        connect: bool = True,
        generator: torch.Generator | None = None,
        straight_through: bool = False,
    ) -> GeneratedCells:
        """Generate one cell per row of ``cond`` (``(B, cond_size)``).

        ``sample``: draw types and edges (else argmax and ``p > 0.5``); ``connect``: give a
        vertex without a drawn predecessor its most probable one; ``generator``: the CPU
        generator the draws use (``None``: torch's global one); ``straight_through``: the
        soft graphs carry the choices with the probabilities' gradient.
        """
        b, dev = cond.shape[0], cond.device
        k, vmax, nt = self.n_inputs, self.max_vertices, self.n_types
        start = [
            self.type_emb(torch.full((b,), input_type(i), dtype=torch.long, device=dev))
            for i in range(k)
        ]
        h = torch.stack(
            [
                self.f_start_2(F.leaky_relu(self.f_start(torch.cat([e, cond], -1)), _SLOPE))
                for e in start
            ],
            1,
        )
        adj = torch.zeros(b, k, k, device=dev)
        type_rows = [
            F.one_hot(torch.full((b,), input_type(i), device=dev), nt).float() for i in range(k)
        ]
        edge_cols = [torch.zeros(b, vmax, device=dev) for _ in range(k)]
        types = torch.full((b, vmax), -1, dtype=torch.long, device=dev)
        types[:, :k] = torch.arange(1, k + 1, device=dev)
        hard = torch.zeros(b, vmax, vmax, dtype=torch.bool, device=dev)
        n = torch.zeros(b, dtype=torch.long, device=dev)
        done = torch.zeros(b, dtype=torch.bool, device=dev)
        for t in range(k, vmax):
            h = self.propagate(h, adj)
            h_g, h_g_init = self.readout(h), self.readout_init(h)
            logits = self.add_node(torch.cat([h_g, cond], -1)).masked_fill(
                ~self.types_ok[t], -math.inf
            )
            probs = logits.softmax(-1)
            if t == vmax - 1:
                choice = torch.full((b,), OUTPUT, dtype=torch.long, device=dev)
                probs = F.one_hot(choice, nt).float()
            else:
                choice = _draw_categorical(probs, sample, generator)
            x = torch.cat([self.type_emb(choice), h_g_init, cond], -1)
            h_v = F.normalize(self.f_init_2(F.leaky_relu(self.f_init(x), _SLOPE)), dim=-1)
            pair = torch.cat(
                [
                    h,
                    h_v.unsqueeze(1).expand(-1, t, -1),
                    torch.cat([h_g, cond], -1).unsqueeze(1).expand(-1, t, -1),
                ],
                -1,
            )
            allowed = self.edges_ok[:t, t]
            p_edge = torch.sigmoid(self.add_edge(pair).squeeze(-1)) * allowed
            edges = _draw_bernoulli(p_edge, sample, generator)
            if connect and bool(allowed.any()):
                lonely = ~edges.any(1)
                best = p_edge.detach().masked_fill(~allowed, -1.0).argmax(1)
                edges = edges | (lonely.unsqueeze(1) & F.one_hot(best, t).bool())
            live = ~done
            row, col = probs, p_edge
            if straight_through:
                row = F.one_hot(choice, nt).float() + probs - probs.detach()
                col = edges.float() + p_edge - p_edge.detach()
            type_rows.append(row * live.unsqueeze(1))
            edge_cols.append(F.pad(col * live.unsqueeze(1), (0, vmax - t)))
            types[:, t] = torch.where(live, choice, types[:, t])
            hard[:, :t, t] = edges & live.unsqueeze(1)
            h = torch.cat([h, h_v.unsqueeze(1)], 1)
            adj = F.pad(adj, (0, 1, 0, 1))
            adj[:, :t, t] = edges.float()
            ended = live & (choice == OUTPUT)
            n = torch.where(ended, t + 1, n)
            done = done | ended
            if bool(done.all()):
                break
        while len(type_rows) < vmax:
            type_rows.append(torch.zeros(b, nt, device=dev))
            edge_cols.append(torch.zeros(b, vmax, device=dev))
        soft = SoftGraphs(torch.stack(type_rows, 1), torch.stack(edge_cols, 2), n)
        return GeneratedCells(soft, types, hard)


class NAGGenerator(nn.Module):
    """NAG's conditional generator: one `CellGenerator` per cell kind, one shared condition.

    ``c = [z ; normalize(Emb_1(y_1)) ; ...]``: z is ``latent_dim`` noise, and each objective
    (accuracy; accuracy and params for the multi-objective ``G_MultiObj``) has its own label
    embedding, L2-normalised. Every cell kind gets the same ``c``.

    Args:
        n_types: vertex vocabulary size (`GraphAdapter.n_types`).
        n_inputs: input vertices per cell.
        max_vertices: the largest cell (``max_step``, 10 in NAG).
        n_cells: cell kinds per architecture (2 in NAG: normal, reduction).
        n_label_classes: classes per objective, ``(3,)`` or ``(3, 3)``.
        latent_dim: size of z.
        label_embedding_size: per-objective label embedding (``cls_*_embedding_size``).
        emb_size: node-state size (``g_emb_size``).
        hidden_size: graph-embedding size (``g_hidden_size``).
        num_layers: propagation layers per step (``g_num_layers``).
        dropout: node-state dropout (``g_dropout``).
        sample: draw types and edges from the model's probabilities; ``False`` is the
            reference's argmax and ``p > 0.5`` (then only z and dropout make samples differ).
        connect: give every new vertex at least one predecessor (the reference does not and
            loses the cells whose output is unreachable).
        straight_through: show the discriminator the chosen one-hot types and 0/1 edges, with
            the probabilities' gradient (straight-through estimator; commented out in the
            reference, `generator.py:149,162`). Without it, D can tell generated cells by
            their soft rows alone; with it, only by which cells they are.
        allowed_types: the space's types per position (`GraphAdapter.allowed_types`).
        allowed_edges: the space's possible edges (`GraphAdapter.allowed_edges`).
    """

    def __init__(
        self,
        n_types: int,
        n_inputs: int,
        max_vertices: int,
        n_cells: int = 1,
        n_label_classes: Sequence[int] = (3,),
        latent_dim: int = 100,
        label_embedding_size: int = 10,
        emb_size: int = 250,
        hidden_size: int = 56,
        num_layers: int = 3,
        dropout: float = 0.5,
        sample: bool = True,
        connect: bool = True,
        straight_through: bool = False,
        allowed_types: np.ndarray | None = None,
        allowed_edges: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.n_inputs, self.max_vertices, self.n_types = n_inputs, max_vertices, n_types
        self.n_label_classes = tuple(int(k) for k in n_label_classes)
        self.latent_dim = latent_dim
        self.sample, self.connect, self.straight_through = sample, connect, straight_through
        self.label_embeddings = nn.ModuleList(
            nn.Embedding(k, label_embedding_size) for k in self.n_label_classes
        )
        cond = latent_dim + label_embedding_size * len(self.n_label_classes)
        self.cells = nn.ModuleList(
            CellGenerator(
                n_types,
                n_inputs,
                max_vertices,
                cond,
                emb_size,
                hidden_size,
                num_layers,
                dropout,
                allowed_types,
                allowed_edges,
            )
            for _ in range(n_cells)
        )

    @classmethod
    def for_adapter(
        cls, adapter: GraphAdapter, n_label_classes: Sequence[int] = (3,), **kwargs: object
    ) -> NAGGenerator:
        """The generator of ``adapter``'s vocabulary, grammar, cell size and cell kinds."""
        kwargs.setdefault("allowed_types", adapter.allowed_types())
        kwargs.setdefault("allowed_edges", adapter.allowed_edges())
        return cls(
            adapter.n_types,
            adapter.n_inputs,
            adapter.max_vertices,
            adapter.n_cells,
            n_label_classes,
            **kwargs,  # type: ignore[arg-type]
        )

    def condition(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``[z ; normalized label embeddings]`` for ``labels`` of shape ``(B, n_objectives)``."""
        embs = [F.normalize(e(labels[:, i]), dim=-1) for i, e in enumerate(self.label_embeddings)]
        return torch.cat([z, *embs], -1)

    def forward(
        self, z: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> list[GeneratedCells]:
        """One `GeneratedCells` per cell kind for noise ``z`` and ``labels``."""
        c = self.condition(z, labels)
        return [
            cell(c, self.sample, self.connect, generator, self.straight_through)
            for cell in self.cells
        ]

    @torch.no_grad()
    def sample_graphs(
        self, z: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> list[tuple[CellGraph, ...]]:
        """Pruned graphs, one tuple of cells per row (in the module's current mode)."""
        per_kind = [g.graphs(self.n_inputs) for g in self(z, labels, generator)]
        return list(zip(*per_kind, strict=True))


class GCNLayer(nn.Module):
    """``A_norm @ x @ W`` without bias; W initialised ``U(-1/sqrt(in), 1/sqrt(in))``."""

    def __init__(self, in_size: int, out_size: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_size)
        self.weight = nn.Parameter(torch.empty(in_size, out_size).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, a_norm: torch.Tensor) -> torch.Tensor:
        return a_norm @ (x @ self.weight)


class CellDiscriminator(nn.Module):
    """Embeds one cell kind: type embedding, GCN layers, gated-sum readout (§3.4).

    The adjacency is made undirected with self-loops, ``A + A^T + I``, and normalised
    ``D^-1/2 (.) D^-1/2``; padded vertices only have their self-loop. Node embeddings are
    L2-normalised and read out over the first ``n`` vertices.

    Args:
        n_types: vertex vocabulary size.
        emb_size: node embedding size (``d_emb_size``).
        hidden_size: graph embedding size (``d_hidden_size``).
        num_layers: GCN layers (``d_gnn_num_layers``).
        dropout: dropout on each GCN layer's input (``d_gnn_dropout``).
    """

    def __init__(
        self,
        n_types: int,
        emb_size: int = 250,
        hidden_size: int = 56,
        num_layers: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.dropout = dropout
        self.embed = nn.Linear(n_types, emb_size, bias=False)
        self.layers = nn.ModuleList(GCNLayer(emb_size, emb_size) for _ in range(num_layers))
        self.readout = GatedSum(emb_size, hidden_size)

    def forward(self, g: SoftGraphs) -> torch.Tensor:
        a = g.adjacency
        a_hat = a + a.transpose(1, 2) + torch.eye(a.shape[1], device=a.device)
        d_inv = a_hat.sum(-1).rsqrt()
        a_norm = d_inv.unsqueeze(-1) * a_hat * d_inv.unsqueeze(1)
        x = self.embed(g.types)
        for i, layer in enumerate(self.layers):
            x = layer(F.dropout(x, self.dropout, self.training), a_norm)
            if i < len(self.layers) - 1:
                x = F.leaky_relu(x, _SLOPE)
        x = F.normalize(x, dim=-1)
        mask = torch.arange(a.shape[1], device=a.device).unsqueeze(0) < g.n.unsqueeze(1)
        return self.readout(x, mask)


class NAGDiscriminator(nn.Module):
    """NAG's conditional critic: one `CellDiscriminator` per cell kind and an MLP head.

    The head reads ``[h_cell_1 ; ... ; normalize(Emb_1(y_1)) ; ...]`` and halves the width at
    each layer (NAG: 122 -> 61 -> 30 -> 15 -> 1), with dropout before and leaky-ReLU after
    each hidden layer. The score is unbounded (least-squares GAN, no sigmoid).

    Args:
        n_types: vertex vocabulary size.
        n_cells: cell kinds per architecture.
        n_label_classes: classes per objective.
        label_embedding_size: per-objective label embedding.
        emb_size: GCN width (``d_emb_size``).
        hidden_size: per-cell graph embedding (``d_hidden_size``).
        gnn_num_layers: GCN layers (``d_gnn_num_layers``).
        gnn_dropout: GCN input dropout (``d_gnn_dropout``).
        mlp_num_layers: linear layers of the head (``d_mlp_num_layers``).
        mlp_dropout: head dropout (``d_mlp_dropout``).
        head_init: ``kaiming`` (default): the head's linear layers start Kaiming-normal for
            leaky-ReLU 0.2 with zero bias; ``torch``: PyTorch's default init, as the
            reference. With the default init the halving head shrinks its input's spread at
            every layer (score std about 1e-4 on NB201 cells), and the critic sits at the
            least-squares saddle (constant 0.5, loss 0.25) for hundreds of steps.
    """

    def __init__(
        self,
        n_types: int,
        n_cells: int = 1,
        n_label_classes: Sequence[int] = (3,),
        label_embedding_size: int = 10,
        emb_size: int = 250,
        hidden_size: int = 56,
        gnn_num_layers: int = 3,
        gnn_dropout: float = 0.5,
        mlp_num_layers: int = 4,
        mlp_dropout: float = 0.5,
        head_init: Literal["kaiming", "torch"] = "kaiming",
    ) -> None:
        super().__init__()
        if head_init not in ("kaiming", "torch"):
            raise ValueError(f"head_init must be 'kaiming' or 'torch', got {head_init!r}")
        self.n_label_classes = tuple(int(k) for k in n_label_classes)
        self.cells = nn.ModuleList(
            CellDiscriminator(n_types, emb_size, hidden_size, gnn_num_layers, gnn_dropout)
            for _ in range(n_cells)
        )
        self.label_embeddings = nn.ModuleList(
            nn.Embedding(k, label_embedding_size) for k in self.n_label_classes
        )
        width = n_cells * hidden_size + label_embedding_size * len(self.n_label_classes)
        layers: list[nn.Module] = []
        for _ in range(mlp_num_layers - 1):
            layers += [nn.Dropout(mlp_dropout), nn.Linear(width, width // 2), nn.LeakyReLU(_SLOPE)]
            width //= 2
        layers.append(nn.Linear(width, 1))
        self.head = nn.Sequential(*layers)
        if head_init == "kaiming":
            for m in self.head:
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, a=_SLOPE, nonlinearity="leaky_relu")
                    nn.init.zeros_(m.bias)

    @classmethod
    def for_adapter(
        cls, adapter: GraphAdapter, n_label_classes: Sequence[int] = (3,), **kwargs: object
    ) -> NAGDiscriminator:
        """The discriminator of ``adapter``'s vocabulary and cell kinds."""
        return cls(adapter.n_types, adapter.n_cells, n_label_classes, **kwargs)  # type: ignore[arg-type]

    def forward(self, cells: Sequence[SoftGraphs], labels: torch.Tensor) -> torch.Tensor:
        """Scores ``(B,)`` of one batch: a `SoftGraphs` per cell kind and ``(B, k)`` labels."""
        hs = [d(g) for d, g in zip(self.cells, cells, strict=True)]
        embs = [F.normalize(e(labels[:, i]), dim=-1) for i, e in enumerate(self.label_embeddings)]
        return self.head(torch.cat([*hs, *embs], -1)).squeeze(-1)
