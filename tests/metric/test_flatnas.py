"""FlatNAS pieces: SAM/ASAM, candidate fine-tuning, and top1_robust rescoring the archive."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from nasx.data import FakeData
from nasx.evaluator import Evaluator
from nasx.metric import MetricContext, RobustnessMetric, Top1RobustMetric, TorchRunner
from nasx.metric.robustness import alpha_norm, top1_robust
from nasx.optim import SAM, FinetuneSpec, finetune
from nasx.search import EvolutionSearch, NSGASearch
from nasx.search_loop import SearchLoop
from nasx.search_space import NB201Space
from nasx.search_space._nb201_table import load_table
from nasx.supernet import build_supernet

MIXED = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


def space() -> NB201Space:
    return NB201Space(num_classes=4, channels=4, cells_per_stage=1, image_size=8)


def data() -> FakeData:
    d = FakeData(
        num_train=96, num_test=32, size=8, num_classes=4, batch_size=32, eval_batch_size=32
    )
    d.setup(8, 3)
    return d


# --- SAM / ASAM ----------------------------------------------------------------------------


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_step_by_hand(adaptive):
    """f(w) = 0.5 * sum(a * w^2): climb to w + e(w), then SGD with the gradient there."""
    a = torch.tensor([1.0, 3.0, -0.5])
    w0 = torch.tensor([0.7, -1.2, 2.0])
    w = nn.Parameter(w0.clone())
    rho, lr = 0.3, 0.1
    opt = SAM([w], torch.optim.SGD, rho=rho, adaptive=adaptive, lr=lr)

    def closure():
        opt.zero_grad()
        loss = 0.5 * (a * w**2).sum()
        loss.backward()
        return loss

    closure()
    opt.step(closure)
    g = a * w0
    t = w0.abs() if adaptive else torch.ones(3)
    e = rho * t**2 * g / (t * g).norm()
    expected = w0 - lr * a * (w0 + e)
    assert torch.allclose(w.detach(), expected, atol=1e-6)


def test_sam_needs_a_closure_and_a_valid_rho():
    w = nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="closure"):
        SAM([w], torch.optim.SGD, lr=0.1).step()
    with pytest.raises(ValueError, match="rho"):
        SAM([w], torch.optim.SGD, rho=-1.0, lr=0.1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"optimizer": "adam"},
        {"epochs": -1},
        {"lr": 0.0},
        {"max_batches": 0},
        {"schedule": "step"},
    ],
)
def test_finetune_spec_rejects_bad_options(kwargs):
    with pytest.raises(ValueError):
        FinetuneSpec(**kwargs)


def _lrs(spec: FinetuneSpec, steps: int) -> list[float]:
    from nasx.optim.finetune import make_optimizer

    w = nn.Parameter(torch.zeros(1))
    opt, sched = make_optimizer([w], spec, steps)
    lrs = []
    for _ in range(steps):
        lrs.append(sched.get_last_lr()[0])
        w.grad = torch.zeros(1)
        (opt.base_optimizer if hasattr(opt, "base_optimizer") else opt).step()
        sched.step()
    return lrs


def test_cnas_per_batch_schedule_oscillates_and_the_default_decays_smoothly():
    # CNAS: CosineAnnealingLR(T_max=epochs) stepped every batch: period 2 * epochs batches
    one = _lrs(FinetuneSpec(epochs=1, optimizer="sgd", lr=0.1, schedule="cnas_per_batch"), 6)
    assert one == pytest.approx([0.1, 0.0, 0.1, 0.0, 0.1, 0.0], abs=1e-12)
    two = _lrs(FinetuneSpec(epochs=2, optimizer="asam", lr=0.1, schedule="cnas_per_batch"), 5)
    assert two == pytest.approx([0.1, 0.05, 0.0, 0.05, 0.1], abs=1e-12)
    smooth = _lrs(FinetuneSpec(epochs=1, optimizer="sgd", lr=0.1), 4)
    assert smooth == pytest.approx([0.1 * 0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(4)])


def _net_and_loader():
    torch.manual_seed(0)
    sp = space()
    net = build_supernet(sp).extract(sp.parse(MIXED))
    return net, data().train_loader(seed=1)


@pytest.mark.parametrize("optimizer", ["sgd", "asam"])
def test_finetune_lowers_the_loss_and_lightning_matches_the_plain_loop(optimizer):
    from nasx.lit import LightningRunner

    spec = FinetuneSpec(epochs=3, optimizer=optimizer, lr=0.05)
    net, loader = _net_and_loader()
    twin = copy.deepcopy(net)
    before = TorchRunner().evaluate(net.eval(), data().eval_loader("train", 96)).loss
    finetune(net, loader, spec, torch.device("cpu"))
    after = TorchRunner().evaluate(net, data().eval_loader("train", 96)).loss
    assert after < before
    assert not net.training
    LightningRunner(accelerator="cpu").finetune(twin, loader, spec)
    for (k, p), q in zip(net.state_dict().items(), twin.state_dict().values(), strict=True):
        assert torch.allclose(p.float(), q.float(), atol=1e-5), k


def test_asam_and_sgd_differ():
    outs = []
    for optimizer in ("sgd", "asam"):
        net, loader = _net_and_loader()
        finetune(net, loader, FinetuneSpec(epochs=1, optimizer=optimizer), torch.device("cpu"))
        outs.append(torch.cat([p.flatten() for p in net.parameters()]))
    assert not torch.allclose(outs[0], outs[1])


def test_robustness_with_finetuning_scores_the_trained_candidate():
    """finetune_epochs=1 equals: extract, fine-tune with the seeded loader, then measure."""
    torch.manual_seed(0)
    sp, d = space(), data()
    supernet = build_supernet(sp).eval()
    ctx = MetricContext(sp, supernet, d, TorchRunner())
    arch = sp.parse(MIXED)
    kw = dict(sigma=0.0, draws=1, val_images=32, recal_images=32)
    tuned = RobustnessMetric(finetune_epochs=1, finetune_lr=0.05, **kw)
    out = tuned(arch, ctx, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    net = supernet.extract(arch)
    finetune(net, d.train_loader(seed), tuned.finetune, torch.device("cpu"))
    acc = TorchRunner().evaluate(net, d.eval_loader("valid", 32)).accuracy
    assert out["accuracy"] == pytest.approx(acc)


# --- top1_robust ---------------------------------------------------------------------------


def test_top1_robust_rescore_by_hand():
    m = Top1RobustMetric(alpha=0.5)
    archive = [
        {"top1_err": 20.0, "robustness": 1.0, "alpha_norm": 1.0, "top1_robust": 0.0},
        {"top1_err": 40.0, "robustness": 3.0, "alpha_norm": 1.0, "top1_robust": 0.0},
    ]
    assert m.rescore(archive) == {"alpha_norm": 15.0}
    assert archive[0]["top1_robust"] == pytest.approx(0.5 * 20 + 15.0 * 0.5 * 1.0)
    assert archive[1]["top1_robust"] == pytest.approx(0.5 * 40 + 15.0 * 0.5 * 3.0)
    assert all(v["alpha_norm"] == 15.0 for v in archive)
    fixed = Top1RobustMetric(alpha_norm=2.0)
    assert fixed.rescore(archive) is None
    assert archive[0]["top1_robust"] == pytest.approx(17.5)  # untouched
    with pytest.raises(ValueError):
        Top1RobustMetric(alpha=1.5)
    with pytest.raises(ValueError):
        Top1RobustMetric(alpha_norm=0.0)


class TableTop1Robust(Top1RobustMetric):
    """top1_robust from the NB201 table: err = 100 - 12-epoch valid acc, rob from latency."""

    needs_supernet = False

    def _compute(self, arch, ctx, generator):
        row = load_table()[1][ctx.space.index(arch)]
        out = {
            "top1_err": 100.0 - row["cifar10valid_valid_acc_12ep"],
            "robustness": 10.0 * row["latency_ms_pixel3"],
            "accuracy": row["cifar10valid_valid_acc_12ep"] / 100,
        }
        out["alpha_norm"] = self.current_norm
        out[self.name] = self.score(out)
        return out


@pytest.mark.parametrize("strategy", ["evolution", "nsga"])
def test_search_rescores_the_archive_every_iteration(tmp_path, strategy):
    sp = space()
    metric = TableTop1Robust()
    ctx = MetricContext(space=sp, supernet=None, data=FakeData(), runner=TorchRunner())
    ev = Evaluator(sp, metric, [], ctx, seed=0)
    strat = (
        EvolutionSearch(n_evals=60, population=20, top_k=5, n_mutation=8, n_crossover=8)
        if strategy == "evolution"
        else NSGASearch(n_evals=60, pop_size=20)
    )
    strat.setup(sp, 1, 0)
    records = SearchLoop(tmp_path, strat, ev, progress=False).run()
    assert len(records) == 60
    iters = sorted(tmp_path.glob("iter_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    first = json.loads(iters[0].read_text())
    assert first["alpha_norm"] == 1.0  # FlatNAS's DOE value
    assert all(r["metric"]["alpha_norm"] == 1.0 for r in first["archive"])
    last = json.loads(iters[-1].read_text())
    # the last scale is mean err / mean rob over everything evaluated before that iteration
    before = [r for r in last["archive"] if r["iteration"] < last["iteration"]]
    expected = alpha_norm(
        [r["metric"]["top1_err"] for r in before], [r["metric"]["robustness"] for r in before]
    )
    assert last["alpha_norm"] == pytest.approx(expected)
    assert not math.isclose(expected, 1.0)
    for r in last["archive"]:
        v = r["metric"]
        assert v["alpha_norm"] == pytest.approx(expected)
        score = top1_robust(v["top1_err"], v["robustness"], 0.5, expected)
        assert v["top1_robust"] == pytest.approx(score)
        assert r["F"][0] == pytest.approx(score)
    best = min(last["archive"], key=lambda r: r["F"][0])
    assert last["best"]["arch"] == best["arch"]
    # resumed from the journal, the search replays to the same archive
    strat2 = (
        EvolutionSearch(n_evals=60, population=20, top_k=5, n_mutation=8, n_crossover=8)
        if strategy == "evolution"
        else NSGASearch(n_evals=60, pop_size=20)
    )
    strat2.setup(sp, 1, 0)
    for p in iters:
        p.unlink()
    again = SearchLoop(
        tmp_path, strat2, Evaluator(sp, TableTop1Robust(), [], ctx, 0), progress=False
    )
    records2 = again.run()
    key = lambda rs: [(r["arch"], np.round(r["F"], 9).tolist()) for r in rs]  # noqa: E731
    assert key(records2) == key(records)


def test_flatnas_through_the_pipeline(compose_cfg, tmp_path):
    """top1_robust with ASAM fine-tuning, Lightning loops, and the rescored archive selected."""
    from nasx import pipeline
    from nasx.search_loop import load_records

    cfg = compose_cfg(
        "experiment=smoke",
        "metric=top1_robust",
        "metric.val_images=32",
        "metric.draws=2",
        "metric.sigma=1.0",
        "metric.finetune_epochs=1",
        "metric.finetune_batches=2",
        "search=evolution",
        "objective=none",
        "search.n_evals=8",
        "search.population=4",
        "search.top_k=2",
        "search.n_mutation=2",
        "search.n_crossover=2",
    )
    pipeline.run(cfg, tmp_path)
    assert not list((tmp_path / "search" / "failed").glob("*"))
    its = sorted((tmp_path / "search").glob("iter_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    last = json.loads(its[-1].read_text())
    assert len(its) == 2 and last["alpha_norm"] != 1.0
    records = load_records(tmp_path / "search")
    assert all(r["metric"]["alpha_norm"] == last["alpha_norm"] for r in records)
    chosen = json.loads((tmp_path / "final" / "selection.json").read_text())["selected"][0]
    best = min(records, key=lambda r: r["F"][0])
    assert chosen["arch"] == best["arch"]
