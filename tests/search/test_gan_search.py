"""search=gan: NAG's generator as a strategy (dataset phase, rounds, novelty, determinism)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nasx import pipeline
from nasx.errors import NasxError
from nasx.evaluator import FAILED_VALUE
from nasx.search import GANSearch
from nasx.search_space import DartsSpace, NB201Space
from nasx.search_space._nb201_table import load_table

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "epochs": 20,
    "batch_size": 16,
    "emb_size": 16,
    "hidden_size": 8,
    "num_layers": 2,
    "n_generate": 64,
}
COLUMN = "cifar10valid_valid_acc_12ep"


def _table() -> tuple[dict[str, int], list[dict]]:
    return load_table()


def _drive(strategy: GANSearch, fail: set[tuple[int, ...]] = frozenset()) -> list[list]:
    """Run the ask/tell loop on the NB201 table; the asked batches."""
    index, rows = _table()
    space = NB201Space()
    strategy.setup(space, 1, 0)
    batches, seen = [], set()
    while len(seen) < strategy.n_evals:
        archs = strategy.ask()
        if not archs:
            break
        batches.append(archs)
        seen.update(a.genes for a in archs)
        F = np.array(
            [
                [FAILED_VALUE if a.genes in fail else -rows[index[space.to_str(a)]][COLUMN]]
                for a in archs
            ]
        )
        strategy.tell(archs, F)
    return batches


def test_dataset_phase_then_new_generated_architectures_within_budget() -> None:
    s = GANSearch(n_evals=40, dataset_size=24, rounds=2, seed=3, **TINY)
    batches = _drive(s)
    assert [len(b) for b in batches] == [24, 8, 8]
    flat = [a.genes for b in batches for a in b]
    assert len(set(flat)) == 40  # never the same architecture twice
    info = s.info()
    assert info["round"] == 2 and info["n_train"] == 32 and info["condition"] == "high_acc"
    assert info["n_asked"] + info["n_random_fill"] == 8
    assert info["n_valid"] > 0 and len(info["class_thresholds"]["acc"]) == 2
    assert s.ask() == []  # every round done


def test_same_seed_same_batches_other_seed_differs() -> None:
    a = _drive(GANSearch(n_evals=30, dataset_size=20, seed=5, **TINY))
    b = _drive(GANSearch(n_evals=30, dataset_size=20, seed=5, **TINY))
    c = _drive(GANSearch(n_evals=30, dataset_size=20, seed=6, **TINY))
    assert a == b and a != c


def test_failed_evaluations_do_not_train_the_generator() -> None:
    s = GANSearch(n_evals=30, dataset_size=20, seed=1, **TINY)
    s.setup(NB201Space(), 1, 0)
    first = s.ask()
    index, rows = _table()
    F = np.array([[-rows[index[s.space.to_str(a)]][COLUMN]] for a in first])
    F[:5] = FAILED_VALUE
    s.tell(first, F)
    archs, acc, params = s._training_set()
    assert len(archs) == 15 and params is None
    assert np.allclose(np.sort(acc), np.sort(-F[5:, 0]))


def test_infeasible_architectures_are_labelled_worst() -> None:
    s = GANSearch(n_evals=30, dataset_size=10, seed=1, **TINY)
    s.setup(NB201Space(), 1, 0, n_constr=1)
    first = s.ask()
    F = -np.arange(10, dtype=float).reshape(10, 1) - 50.0
    G = np.zeros((10, 1))
    G[9] = 1.0  # the best value, but infeasible
    s.tell(first, F, G)
    _, acc, _ = s._training_set()
    assert acc[9] < acc[:9].min()


def test_multi_objective_condition_uses_parameter_classes() -> None:
    s = GANSearch(n_evals=30, dataset_size=20, seed=2, condition="high_acc+small_params", **TINY)
    batches = _drive(s)
    assert [len(b) for b in batches] == [20, 10] and len(s.info()["class_thresholds"]) == 2
    _, _, params = s._training_set()
    assert params is not None and params.min() < params.max()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"condition": "best_acc"}, "condition"),
        ({"dataset_size": 100}, "below search.n_evals"),
        ({"rounds": 0}, "rounds"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GANSearch(n_evals=100, **kwargs)


def test_a_space_without_cell_graphs_is_refused() -> None:
    with pytest.raises(NasxError, match="space=nb201"):
        GANSearch(n_evals=10).setup(DartsSpace(), 1, 0)


def test_no_data_for_the_generator_is_refused_before_any_work(compose_cfg, tmp_path) -> None:
    for extra in (["search.dataset_size=0"], ["space=darts_cpu"]):
        cfg = compose_cfg("experiment=smoke", "search=gan", *extra)
        with pytest.raises(NasxError, match="search.dataset|space=nb201"):
            pipeline.run(cfg, tmp_path / extra[0])
        assert not (tmp_path / extra[0] / "supernet").exists()


def test_smoke_run_end_to_end_and_resume(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("experiment=smoke", "search=gan", "search.epochs=10", "search.n_generate=32")
    pipeline.run(cfg, tmp_path)
    journal = (tmp_path / "search" / "evaluations.jsonl").read_text().splitlines()
    assert len(journal) == 8 and (tmp_path / "final" / "selection.json").exists()
    last = (tmp_path / "search" / "iter_2.json").read_text()
    assert '"round": 2' in last and '"n_train": 6' in last
    # a killed search re-run with the same command: replayed from the journal, same archive
    (tmp_path / "search" / "done.json").unlink()
    pipeline.run(cfg, tmp_path)
    assert (tmp_path / "search" / "evaluations.jsonl").read_text().splitlines() == journal


def test_gan_learns_from_the_nas_dataset_stage_without_evaluating_it(
    compose_cfg, tmp_path: Path
) -> None:
    cfg = compose_cfg(
        "stages=[nas_dataset,search]",
        "space=nb201",
        "metric=benchmark",
        "objective=none",
        "search=gan",
        "nas_dataset.source=table",
        "nas_dataset.size=120",
        "search.dataset_size=0",
        "search.n_evals=10",
        "search.rounds=1",
        "search.epochs=2",
        "search.n_generate=64",
        "logger=none",
        "progress=false",
    )
    pipeline.run(cfg, tmp_path)
    lines = (tmp_path / "search" / "evaluations.jsonl").read_text().splitlines()
    dataset = (tmp_path / "nas_dataset" / "nas_dataset.json").read_text()
    assert len(lines) == 10  # every evaluation is a generated architecture
    info = (tmp_path / "search" / "iter_0.json").read_text()
    assert '"n_train": 120' in info
    for line in lines:  # new architectures only: none from the dataset
        arch = line.split('"arch": "')[1].split('"')[0]
        assert f'"arch": "{arch}"' not in dataset
