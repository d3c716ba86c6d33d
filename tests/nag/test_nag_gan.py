from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from nasx.nag.gan import NAGDiscriminator, NAGGenerator, encode_graphs
from nasx.nag.graph import OUTPUT, CellGraph, GraphAdapter, is_valid_cell
from nasx.nag.nb201_adapter import ADJACENCY, NB201GraphAdapter
from nasx.nag.sampling import seeded_torch
from nasx.search_space.base import Architecture
from nasx.search_space.nb201 import NB201Space

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"emb_size": 16, "hidden_size": 8, "num_layers": 2}


class NAGLikeAdapter(GraphAdapter):
    """NAG's vocabulary and default grammar: 2 inputs, 5 ops, up to 10 vertices, 2 cells."""

    space = NB201Space()  # unused: only the grammar matters here
    max_vertices = 10
    n_types = 8
    n_inputs = 2
    cell_names = ("normal", "reduce")
    type_names = ("output", "input0", "input1", "sep3", "sep5", "avg", "max", "identity")

    def to_graphs(self, arch: Architecture) -> tuple[CellGraph, ...]:
        raise NotImplementedError

    def from_graphs(self, graphs: Sequence[CellGraph]) -> Architecture | None:
        return None


def _draw(g: NAGGenerator, n: int, seed: int) -> list[tuple[CellGraph, ...]]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, g.latent_dim, generator=gen)
    y = torch.randint(0, 3, (n, len(g.n_label_classes)), generator=gen)
    return g.sample_graphs(z, y, gen)


@pytest.mark.parametrize("sample", [True, False])
def test_generated_cells_are_always_valid(sample: bool) -> None:
    adapter = NAGLikeAdapter()
    with seeded_torch(0):
        g = NAGGenerator.for_adapter(adapter, sample=sample, **TINY).eval()
    cells = [c for pair in _draw(g, 300, 1) for c in pair]
    assert len(cells) == 600
    assert all(is_valid_cell(c, 2, adapter.n_types) for c in cells)
    assert max(c.n_vertices for c in cells) <= 10
    if sample:  # an untrained generator explores: sizes from 3 to 10 vertices
        assert len({c.n_vertices for c in cells}) >= 4


def test_nb201_grammar_limits_generation_to_its_topology() -> None:
    adapter = NB201GraphAdapter()
    with seeded_torch(0):
        g = NAGGenerator.for_adapter(adapter, **TINY).eval()
    with torch.no_grad():
        (out,) = g(torch.randn(64, g.latent_dim), torch.zeros(64, 1, dtype=torch.long))
    assert (out.soft.n == 8).all()
    assert (out.soft.adjacency[:, ~torch.tensor(np.asarray(ADJACENCY, dtype=bool))] == 0).all()
    assert (out.types[:, 1:7] >= 2).all() and (out.types[:, 7] == OUTPUT).all()
    assert all(is_valid_cell(c, 1, 7) for (c,) in _draw(g, 64, 0))


def test_straight_through_shows_the_choices_with_soft_gradients() -> None:
    with seeded_torch(0):
        g = NAGGenerator.for_adapter(NB201GraphAdapter(), straight_through=True, **TINY)
    (out,) = g(torch.randn(8, g.latent_dim), torch.zeros(8, 1, dtype=torch.long))
    chosen = torch.nn.functional.one_hot(out.types.clamp(min=0), 7).float()
    assert torch.allclose(out.soft.types, chosen)
    assert torch.allclose(out.soft.adjacency, out.adjacency.float())
    out.soft.types.sum().backward()
    assert g.cells[0].add_node[0].weight.grad is not None


def test_reference_sizes_and_discriminator_output() -> None:
    adapter = NAGLikeAdapter()
    g = NAGGenerator.for_adapter(adapter)
    d = NAGDiscriminator.for_adapter(adapter)
    # the reference's sizes (§3.3-3.4): G about 7.66M, D about 0.42M, head 122-61-30-15-1
    assert sum(p.numel() for p in g.parameters()) / 1e6 == pytest.approx(7.66, abs=0.01)
    assert sum(p.numel() for p in d.parameters()) / 1e6 == pytest.approx(0.42, abs=0.01)
    widths = [m.in_features for m in d.head if isinstance(m, torch.nn.Linear)]
    assert widths == [122, 61, 30, 15]
    multi = NAGDiscriminator.for_adapter(adapter, (3, 3))
    assert [m.in_features for m in multi.head if isinstance(m, torch.nn.Linear)] == [
        132,
        66,
        33,
        16,
    ]
    cells = [c for c in NB201GraphAdapter().to_graphs(Architecture((1,) * 6))]
    real = encode_graphs(cells * 5, 10, 8)
    assert real.types.shape == (5, 10, 8) and real.n.tolist() == [8] * 5
    score = multi([real, real], torch.zeros(5, 2, dtype=torch.long))
    assert score.shape == (5,)
