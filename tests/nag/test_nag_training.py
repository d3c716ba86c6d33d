from __future__ import annotations

import numpy as np
import pytest
import torch

from nasx.lit.nag import NAGLitModule, generate, train_generator
from nasx.nag.gan import NAGDiscriminator, NAGGenerator
from nasx.nag.labels import nag_labels, params_values
from nasx.nag.nb201_adapter import NB201GraphAdapter
from nasx.nag.sampling import seeded_torch
from nasx.search_space._nb201_table import load_table

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_G = {"emb_size": 16, "hidden_size": 8, "num_layers": 2}
TINY_D = {"emb_size": 16, "hidden_size": 8, "gnn_num_layers": 2}


@pytest.fixture(scope="module")
def adapter() -> NB201GraphAdapter:
    return NB201GraphAdapter()


@pytest.fixture(scope="module")
def table_sample(adapter: NB201GraphAdapter) -> tuple[list, np.ndarray, np.ndarray]:
    """600 NB201 cells drawn from the table: (archs, 12-epoch valid acc, 200-epoch test acc)."""
    _, rows = load_table()
    archs = adapter.space.enumerate()
    pick = np.random.default_rng(0).choice(len(archs), 600, replace=False)
    valid = np.asarray([rows[i]["cifar10valid_valid_acc_12ep"] for i in pick])
    test = np.asarray([rows[i]["cifar10_test_acc_200ep"] for i in pick])
    return [archs[i] for i in pick], valid, test


def _tiny(
    adapter: NB201GraphAdapter, classes: tuple[int, ...] = (3,)
) -> tuple[NAGGenerator, NAGDiscriminator]:
    return (
        NAGGenerator.for_adapter(adapter, classes, **TINY_G),
        NAGDiscriminator.for_adapter(adapter, classes, **TINY_D),
    )


def test_one_training_step_changes_both_networks(adapter, table_sample) -> None:
    archs, valid, _ = table_sample
    with seeded_torch(0):
        g, d = _tiny(adapter)
    before = [[p.detach().clone() for p in m.parameters()] for m in (g, d)]
    graphs = [adapter.to_graphs(a) for a in archs[:8]]
    out = train_generator(
        adapter,
        graphs,
        nag_labels(valid[:8]),
        seed=0,
        epochs=1,
        batch_size=8,
        generator=g,
        discriminator=d,
    )
    assert out is g and not g.training
    for m, old in zip((g, d), before, strict=True):
        changed = [not torch.equal(p, q) for p, q in zip(m.parameters(), old, strict=True)]
        assert sum(changed) >= len(changed) // 2, type(m).__name__


def test_same_seed_same_generated_set(adapter, table_sample) -> None:
    archs, valid, _ = table_sample
    graphs = [adapter.to_graphs(a) for a in archs[:32]]
    labels = nag_labels(valid[:32])
    runs = []
    for _ in range(2):
        with seeded_torch(1):
            g, d = _tiny(adapter)
        # start with NB201's 10 edges almost surely drawn, so that 2 steps give valid cells
        torch.nn.init.constant_(g.cells[0].add_edge[-1].bias, 6.0)
        state = torch.get_rng_state()
        runs.append(
            train_generator(
                adapter,
                graphs,
                labels,
                seed=3,
                epochs=2,
                batch_size=16,
                generator=g,
                discriminator=d,
            )
        )
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    assert all(
        torch.equal(p, q) for p, q in zip(runs[0].parameters(), runs[1].parameters(), strict=True)
    )
    a = generate(runs[0], adapter, "high_acc", 64, seed=5)
    b = generate(runs[1], adapter, "high_acc", 64, seed=5)
    assert a == b and len(a) > 0
    assert generate(runs[0], adapter, "high_acc", 64, seed=6) != a
    assert generate(runs[0], adapter, "high_acc", 64, seed=5, dropout=True) == generate(
        runs[1], adapter, "high_acc", 64, seed=5, dropout=True
    )
    unique = generate(runs[0], adapter, "high_acc", 64, seed=5, unique=True)
    assert unique == list(dict.fromkeys(a))


def test_multi_objective_generation(adapter, table_sample) -> None:
    archs, valid, _ = table_sample
    archs, valid = archs[:16], valid[:16]
    index, _ = load_table()
    labels = nag_labels(valid, params_values(adapter, archs))
    with seeded_torch(0):
        g, d = _tiny(adapter, (3, 3))
    torch.nn.init.constant_(g.cells[0].add_edge[-1].bias, 6.0)
    g = train_generator(
        adapter,
        [adapter.to_graphs(a) for a in archs],
        labels,
        seed=0,
        epochs=1,
        batch_size=16,
        generator=g,
        discriminator=d,
        clip_grad_norm=None,  # gan_multiobj.py's setting
        mismatch_weight=0.5,
    )
    out = generate(g, adapter, "high_acc+small_params", 32, seed=0)
    assert len(out) > 16 and all(adapter.space.to_str(a) in index for a in out)
    with pytest.raises(ValueError, match="objective"):
        generate(g, adapter, "high_acc", 8, seed=0)


def test_conditioning_shifts_the_generated_accuracy(adapter, table_sample) -> None:
    """The "high" class generates better NB201 cells than the "low" class.

    Labels are terciles of the 12-epoch validation accuracy (NAG's noisy one-shot accuracy);
    the generated cells are judged by their 200-epoch test accuracy. A test-sized run: 288
    steps of small networks with the straight-through estimator and no dropout; with the
    reference's soft graphs and dropout 0.5, 300 steps do not condition yet.
    """
    archs, valid, test = table_sample
    with seeded_torch(0):
        generator = NAGGenerator.for_adapter(
            adapter, emb_size=32, hidden_size=16, dropout=0.0, straight_through=True
        )
        discriminator = NAGDiscriminator.for_adapter(
            adapter, emb_size=32, hidden_size=16, gnn_dropout=0.0, mlp_dropout=0.0
        )
    g = train_generator(
        adapter,
        [adapter.to_graphs(a) for a in archs],
        nag_labels(valid),
        seed=0,
        epochs=16,
        batch_size=32,
        lr=2e-3,
        generator=generator,
        discriminator=discriminator,
    )
    index, rows = load_table()
    medians = {}
    for cond in ("low_acc", "mid_acc", "high_acc"):
        out = generate(g, adapter, cond, 300, seed=0)
        assert len(out) > 200  # NB201's fixed topology is learnt: most draws are cells
        accs = [rows[index[adapter.space.to_str(a)]]["cifar10_test_acc_200ep"] for a in out]
        medians[cond] = float(np.median(accs))
    print("median cifar10_test_acc_200ep per class:", medians, "data:", np.median(test))
    assert medians["high_acc"] > medians["low_acc"] + 1.0


def test_wrong_labels_differ_in_every_objective(adapter) -> None:
    g, d = _tiny(adapter, (3, 2))
    module = NAGLitModule(g, d, mismatch_weight=0.5)
    labels = torch.stack([torch.arange(300) % 3, torch.arange(300) % 2], 1)
    wrong = module._wrong_labels(labels)
    assert (wrong != labels).all() and (wrong[:, 0] < 3).all() and (wrong[:, 1] < 2).all()
    assert set(wrong[labels[:, 0] == 0, 0].tolist()) == {1, 2}
