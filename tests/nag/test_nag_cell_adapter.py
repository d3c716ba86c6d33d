"""NAG's cell space as graphs: exact round trips, NAG's vocabulary, invalid graphs refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasx.errors import NasxError
from nasx.nag.adapters import adapter_for
from nasx.nag.gan import NAGGenerator
from nasx.nag.graph import CellGraph
from nasx.nag.nag_cell_adapter import NAGCellGraphAdapter
from nasx.nag.nb201_adapter import NB201GraphAdapter
from nasx.nag.sampling import generate, seeded_torch
from nasx.search_space import DartsSpace, NB201Space
from nasx.search_space.nag_cell import NAGCellSpace


@pytest.fixture(scope="module")
def adapter() -> NAGCellGraphAdapter:
    return NAGCellGraphAdapter(NAGCellSpace(channels=4, cells_per_stage=1, image_size=8))


def test_round_trip_on_sampled_and_published_cells(adapter: NAGCellGraphAdapter) -> None:
    space = adapter.space
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(200)]
    archs += [space.parse(name) for name in space.named_architectures()]
    for arch in archs:
        graphs = adapter.to_graphs(arch)
        assert len(graphs) == 2 and all(g.n_vertices <= 10 for g in graphs)
        assert adapter.from_graphs(graphs) == arch


def test_graphs_use_nag_vocabulary(adapter: NAGCellGraphAdapter) -> None:
    """The published high-acc normal cell (seed-nag.md §6.1) in NAG's type codes."""
    normal, reduce = adapter.to_graphs(adapter.space.parse("NAG_HIGH_ACC"))
    # output=0, input0=1, input1=2, seqconv3x3=3, seqconv5x5=4, avgpool=5, maxpool=6, id=7
    assert normal.types == (1, 2, 3, 4, 6, 4, 4, 4, 0)
    assert reduce.types == (1, 2, 4, 3, 4, 0)
    assert normal.predecessors(8) == [0, 1, 2, 3, 4, 7]
    assert reduce.predecessors(3) == [0, 1, 2]


def test_invalid_graphs_are_no_architecture(adapter: NAGCellGraphAdapter) -> None:
    ok = adapter.to_graphs(adapter.space.parse("NAG_HIGH_ACC"))
    # output reached by nothing
    lonely = CellGraph((1, 2, 3, 0), ((0, 0, 1, 0), (0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0)))
    # input0 -> input1
    joined = CellGraph((1, 2, 0), ((0, 1, 1), (0, 0, 1), (0, 0, 0)))
    for bad in (lonely, joined):
        assert adapter.from_graphs((bad, ok[1])) is None
    assert adapter.from_graphs(ok[:1]) is None


def test_an_untrained_generator_grows_cells_of_the_space(adapter: NAGCellGraphAdapter) -> None:
    with seeded_torch(0):
        g = NAGGenerator.for_adapter(adapter, emb_size=16, hidden_size=8, num_layers=1)
    archs = generate(g, adapter, "high_acc", 32, seed=0)
    assert len(archs) >= 16  # `connect` gives every vertex a predecessor: most are cells
    for a in archs:
        assert adapter.space.decode(a.genes) == a  # canonical architectures of the space
    assert torch.is_grad_enabled()


def test_adapter_for_picks_the_space_adapter() -> None:
    assert isinstance(adapter_for(NB201Space()), NB201GraphAdapter)
    assert isinstance(adapter_for(NAGCellSpace()), NAGCellGraphAdapter)
    with pytest.raises(NasxError, match="nag_cell"):
        adapter_for(DartsSpace())


def test_reference_dataset_switch_samples_the_normal_cell_twice() -> None:
    """§8.1: the reference's NAS dataset uses each sampled normal cell as both cells."""
    rng = np.random.default_rng(0)
    same = NAGCellSpace(sample_same_cells=True)
    archs = [same.sample(rng) for _ in range(50)]
    assert all(same.cells(a)[0] == same.cells(a)[1] for a in archs)
    both = NAGCellSpace()
    assert sum(both.cells(a)[0] != both.cells(a)[1] for a in [both.sample(rng) for _ in range(50)])
    assert "sample_same_cells" not in both.describe() and same.describe()["sample_same_cells"]
