"""Atomic writes, the journal, and safe checkpoint loading."""

from __future__ import annotations

import json
import os
import pickle
import stat
from pathlib import Path

import pytest
import torch

from nasx.errors import NasxError
from nasx.io import (
    Journal,
    load_state_dict,
    save_torch_atomic,
    write_json_atomic,
    write_text_atomic,
)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


class NotATensor:
    def __init__(self, x: int = 1) -> None:
        self.x = x


# --- atomic writes -------------------------------------------------------------------------


def test_write_json_atomic_writes_and_replaces(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_json_atomic(path, {"a": 1, "b": [1.5, "x"]})
    assert json.loads(path.read_text()) == {"a": 1, "b": [1.5, "x"]}
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert path.read_text().endswith("\n")
    assert leftovers(path.parent) == []
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_write_json_atomic_keeps_the_old_file_when_serialisation_fails(tmp_path):
    path = tmp_path / "a.json"
    write_json_atomic(path, {"ok": True})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": True}
    assert leftovers(tmp_path) == []
    with pytest.raises(ValueError):
        write_json_atomic(path, _circular())
    assert json.loads(path.read_text()) == {"ok": True}
    assert leftovers(tmp_path) == []


def _circular():
    d: dict = {}
    d["self"] = d
    return d


def test_failed_write_midway_removes_the_temp_file(tmp_path):
    path = tmp_path / "w.pt"
    save_torch_atomic(path, {"w": torch.ones(2)})
    with pytest.raises(Exception):  # noqa: B017 - pickling a lambda fails in torch.save
        save_torch_atomic(path, {"f": lambda: 0})
    assert torch.equal(load_state_dict(path)["w"], torch.ones(2))
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]


def test_atomic_files_get_normal_permissions(tmp_path):
    path = tmp_path / "t.txt"
    write_text_atomic(path, "hello")
    assert path.read_text() == "hello"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


# --- journal -------------------------------------------------------------------------------


def test_journal_round_trip(tmp_path):
    j = Journal(tmp_path / "deep" / "e.jsonl")
    assert j.read() == []
    recs = [{"i": i, "arch": f"a{i}", "F": [i * 0.5, -i]} for i in range(5)]
    for r in recs:
        j.append(r)
    assert j.read() == recs
    assert Journal(j.path).read() == recs


def test_journal_skips_a_torn_last_line_and_appends_after_it(tmp_path):
    path = tmp_path / "e.jsonl"
    j = Journal(path)
    j.append({"i": 0})
    j.append({"i": 1})
    with path.open("a") as fh:
        fh.write('{"i": 2, "arch": "|nor_co')  # killed mid-write
    assert j.read() == [{"i": 0}, {"i": 1}]
    j.close()
    resumed = Journal(path)  # the re-run process opens the journal again
    resumed.append({"i": 3})
    assert resumed.read() == [{"i": 0}, {"i": 1}, {"i": 3}]
    assert path.read_text() == '{"i": 0}\n{"i": 1}\n{"i": 3}\n'


def test_journal_torn_first_line(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text('{"i": 0, "ar')
    j = Journal(path)
    assert j.read() == []
    j.append({"i": 1})
    assert j.read() == [{"i": 1}]


# --- checkpoints ---------------------------------------------------------------------------


def test_load_state_dict_missing_file(tmp_path):
    with pytest.raises(NasxError, match="does not exist"):
        load_state_dict(tmp_path / "nope.pt")
    with pytest.raises(NasxError):
        load_state_dict(tmp_path)  # a folder is not a checkpoint


def test_load_state_dict_garbage_bytes(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(os.urandom(512))
    with pytest.raises(NasxError, match="corrupt"):
        load_state_dict(path)
    path.write_bytes(b"")
    with pytest.raises(NasxError):
        load_state_dict(path)


def test_load_state_dict_truncated_checkpoint(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save({"w": torch.randn(100, 100)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NasxError):
        load_state_dict(path)


def test_load_state_dict_refuses_arbitrary_objects(tmp_path):
    # a pickle of a custom class: the safe loader must refuse it, not run it
    path = tmp_path / "obj.pt"
    torch.save({"w": torch.ones(1), "evil": NotATensor()}, path)
    with pytest.raises(NasxError):
        load_state_dict(path)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"w": NotATensor()}))
    with pytest.raises(NasxError):
        load_state_dict(raw)


@pytest.mark.parametrize(
    "obj",
    [
        {"w": torch.ones(1), "step": "not a tensor"},
        {"w": torch.ones(1), "n": 3},
        [torch.ones(1)],
        torch.ones(3),
        {"state_dict": {"w": "x"}},
        {"state_dict": [1, 2]},
    ],
)
def test_load_state_dict_needs_a_dict_of_tensors(tmp_path, obj):
    path = tmp_path / "x.pt"
    torch.save(obj, path)
    with pytest.raises(NasxError, match="state dict"):
        load_state_dict(path)


def test_load_state_dict_plain_and_lightning(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    sd = net.state_dict()
    plain = tmp_path / "w.pt"
    save_torch_atomic(plain, sd)
    got = load_state_dict(plain)
    assert got.keys() == sd.keys()
    assert all(torch.equal(got[k], sd[k]) for k in sd)

    ckpt = tmp_path / "last.ckpt"
    torch.save(
        {
            "epoch": 3,
            "global_step": 120,
            "pytorch-lightning_version": "2.4.0",
            "state_dict": {f"net.{k}": v for k, v in sd.items()},
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1}]}],
            "lr_schedulers": [{"last_epoch": 3}],
        },
        ckpt,
    )
    got = load_state_dict(ckpt)
    assert set(got) == {f"net.{k}" for k in sd}
    assert all(torch.equal(got[f"net.{k}"], v) for k, v in sd.items())
    # and the loaded weights go back into a network
    fresh = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    fresh.load_state_dict(load_state_dict(plain))
    assert torch.equal(fresh[0].weight, net[0].weight)


def test_load_state_dict_maps_to_cpu(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(2)}, path)
    assert load_state_dict(path)["w"].device.type == "cpu"


def test_journal_batched_fsync_still_writes_through(tmp_path):
    path = tmp_path / "e.jsonl"
    j = Journal(path, fsync_every=100)
    for i in range(5):
        j.append({"i": i})
    # not yet fsync'ed, but already in the file: a killed process loses nothing
    assert Journal(path).read() == [{"i": i} for i in range(5)]
    j.close()
    assert path.read_text().count("\n") == 5
