"""trainer=ddp_cpu: two gloo processes train what one process trains on the same global batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nasx.data import base as data_base
from nasx.data.base import EpochSeededSampler
from nasx.lit.sync_bn import AllReduceBatchNorm
from nasx.search_space import NB201Space
from nasx.supernet.base import build_supernet
from nasx.supernet.recipe import TrainingRecipe
from tests.conftest import run_cli


def test_sampler_shards_are_disjoint_and_make_the_single_process_batches(monkeypatch) -> None:
    n, world, batch = 103, 2, 8  # an odd size: the tail is cut to a multiple of the world
    whole = list(EpochSeededSampler(n, seed=3))
    shards = []
    for rank in range(world):
        monkeypatch.setattr(data_base, "_rank_and_world", lambda r=rank: (r, world))
        sampler = EpochSeededSampler(n, seed=3)
        shards.append(list(sampler))
        assert len(sampler) == len(shards[-1]) == n // world
    assert not set(shards[0]) & set(shards[1])
    per_rank = batch // world
    for k in range(n // batch):
        together = {i for s in shards for i in s[k * per_rank : (k + 1) * per_rank]}
        assert together == set(whole[k * batch : (k + 1) * batch])


def test_every_rank_draws_the_same_path_per_step() -> None:
    # the path of a step is a function of (seed, step) only, not of a process's RNG state
    net = build_supernet(NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8))
    recipe = TrainingRecipe(epochs=1, optimizer=torch.optim.SGD)
    torch.manual_seed(0)
    np.random.seed(0)  # a rank whose global streams moved differently
    first = [recipe.paths(net, 7, step) for step in range(5)]
    torch.manual_seed(1)
    np.random.seed(1)
    assert [recipe.paths(net, 7, step) for step in range(5)] == first
    assert len({str(p) for p in first}) > 1, "different steps train different paths"


def test_all_reduce_batch_norm_applies_and_reverts_in_place() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.BatchNorm1d(2, affine=False))
    keys = list(net.state_dict())
    x = torch.randn(6, 3, 5, 5)
    ref = net[1](net[0](x))
    plugin = AllReduceBatchNorm()
    assert plugin.apply(net) is net
    assert all(isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) for m in net[1:])
    assert type(net[1]) is not nn.BatchNorm2d and list(net.state_dict()) == keys
    # one process: the plain forward
    assert torch.allclose(net[1](net[0](x)), ref)
    plugin.revert(net)
    assert [type(m) for m in net] == [nn.Conv2d, nn.BatchNorm2d, nn.BatchNorm1d]


@pytest.mark.slow
def test_two_cpu_processes_train_the_weights_of_one(tmp_path: Path) -> None:
    """DDP over gloo with a per-process batch of 16 against one process with 32."""
    from nasx.io import load_state_dict

    common = ["experiment=smoke", "stages=[supernet]", "supernet.epochs=2"]
    ddp = run_cli(
        *common, "trainer=ddp_cpu", "dataset.batch_size=16", f"hydra.run.dir={tmp_path / 'ddp'}"
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = run_cli(*common, "dataset.batch_size=32", f"hydra.run.dir={tmp_path / 'one'}")
    assert one.returncode == 0, one.stderr[-3000:]
    for name in ("init.ckpt", "final.ckpt"):
        a = load_state_dict(tmp_path / "ddp" / "supernet" / name)
        b = load_state_dict(tmp_path / "one" / "supernet" / name)
        assert a.keys() == b.keys()
        worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
        assert worst < 1e-5, (name, worst)
    trained = load_state_dict(tmp_path / "one" / "supernet" / "final.ckpt")
    init = load_state_dict(tmp_path / "one" / "supernet" / "init.ckpt")
    assert any(not torch.equal(trained[k], init[k]) for k in trained)

    # rank one wrote nothing but its own log (Lightning names it after the process)
    def files(run: Path) -> set[str]:
        return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}

    assert files(tmp_path / "ddp") == files(tmp_path / "one") | {"train_ddp_process_1.log"}
    assert "supernet: trained" in (tmp_path / "ddp" / "train_ddp_process_1.log").read_text()
