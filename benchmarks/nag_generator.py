"""NAG's conditional generator on the NAS-Bench-201 table: conditioning, and search=gan.

No training of networks: labels come from the packaged table's 12-epoch validation accuracy
(``cifar10valid_valid_acc_12ep``) and every generated cell is judged by its 200-epoch test
accuracy (``cifar10_test_acc_200ep``; optimum 94.37). The GAN is the one of ``search=gan``
with ``conf/search/gan.yaml``'s settings (read from the file).

(a) Conditioning. For each NAS-dataset size N: ``from_table(space, N, seed)``, labels by
terciles of the validation accuracy (`nasx.nag.labels.nag_labels`), `train_generator` for a
comparable number of steps whatever N (epochs = steps / (N // batch)), then M draws for each
of ``low_acc``, ``mid_acc`` and ``high_acc`` (`nasx.nag.sampling.generate`). Per N and class:
median and mean test accuracy of the valid draws (duplicates kept: the generator's output
distribution), against M uniform random cells and the training set's cells of that class;
the share of valid draws, of novel ones (not in the training set) among them, and the number
of distinct valid cells.

(b) Search at 100 evaluations, the protocol of ``search_strategies.py`` (its `search` helper:
SearchLoop, Evaluator, ``metric=benchmark``, test accuracy of the best-by-validation cell
among the first 50 and 100 evaluations): ``search=gan`` (a dataset phase of 50 random table
cells counted in the budget, 2 rounds) against evolution and random with
``search_strategies.py``'s settings, and ``search=gan`` with a NAS dataset of 1000 table
cells as a prior (a file written by `NASDataset.save`, not counted: all 100 evaluations are
generated or random top-ups).

Usage::

    .venv/bin/python benchmarks/nag_generator.py [--quick] [--seeds N] [--write-results]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from _results import cpu_clock, cpu_model, other_cores, write_section
from search_strategies import TEST, VALID, search, strategies

from nasx.nag.adapters import adapter_for
from nasx.nag.dataset import from_table
from nasx.nag.gan import NAGGenerator
from nasx.nag.labels import nag_labels
from nasx.nag.sampling import generate
from nasx.search import GANSearch
from nasx.search_space import NB201Space
from nasx.search_space._nb201_table import load_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
START, END = "<!-- nag_generator:start -->", "<!-- nag_generator:end -->"
CLASSES = ("low_acc", "mid_acc", "high_acc")


def gan_config() -> dict[str, Any]:
    """``conf/search/gan.yaml`` as GANSearch keyword arguments (the run-specific keys dropped)."""
    cfg = yaml.safe_load((ROOT / "conf" / "search" / "gan.yaml").read_text())
    for key in ("_target_", "n_evals", "seed", "dataset", "dataset_size"):
        cfg.pop(key, None)
    return cfg


class RecordingGAN(GANSearch):
    """GANSearch that keeps every round's `info` (the base class keeps the last one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rounds_info: list[dict[str, Any]] = []

    def _generate(self, quota: int) -> list[Any]:
        out = super()._generate(quota)
        self.rounds_info.append(self.info())
        return out


# --- (a) conditioning -----------------------------------------------------------------------
def train(
    space: NB201Space, archs: list[Any], acc: np.ndarray, cfg: dict, seed: int, epochs: int
) -> NAGGenerator:
    """The generator of ``search=gan`` (the same networks and settings) trained on ``archs``."""
    strategy = GANSearch(n_evals=2, dataset_size=1, **cfg)
    strategy.setup(space, 1, seed)
    return strategy.fit_generator(archs, nag_labels(acc), seed, epochs=epochs)


def conditioning(
    sizes: list[int], seeds: int, steps: int, m: int, cfg: dict
) -> tuple[list[dict[str, Any]], dict[int, int]]:
    space = NB201Space()
    adapter = adapter_for(space)
    index, rows = load_table()
    every = space.enumerate()

    def test_acc(archs: list[Any]) -> np.ndarray:
        return np.asarray([rows[index[space.to_str(a)]][TEST] for a in archs], dtype=float)

    out: list[dict[str, Any]] = []
    epochs_of: dict[int, int] = {}
    for n in sizes:
        per_batch = n // min(cfg["batch_size"], n)
        epochs = max(1, round(steps / per_batch))
        epochs_of[n] = epochs
        acc: dict[str, dict[str, list]] = {
            c: {k: [] for k in ("gen", "train", "random", "valid", "novel", "unique", "med")}
            for c in CLASSES
        }
        t = time.perf_counter()
        for seed in range(seeds):
            data = from_table(space, n, seed, VALID)
            archs, labels = list(data.archs), nag_labels(data.accuracy)[:, 0]
            known = {a.genes for a in archs}
            g = train(space, archs, data.accuracy, cfg, seed, epochs)
            rng = np.random.default_rng(10_000 + seed)
            rand = test_acc([every[i] for i in rng.integers(0, len(every), size=m)])
            for k, c in enumerate(CLASSES):
                made = generate(g, adapter, c, m, seed=seed)
                ta = test_acc(made)
                a = acc[c]
                a["gen"].append(ta)
                a["med"].append(float(np.median(ta)) if len(ta) else float("nan"))
                mine = [x for x, y in zip(archs, labels, strict=True) if y == k]
                a["train"].append(test_acc(mine))
                a["random"].append(rand)
                a["valid"].append(len(made) / m)
                a["novel"].append(
                    sum(x.genes not in known for x in made) / len(made) if made else 0.0
                )
                a["unique"].append(len(set(made)))
        secs = (time.perf_counter() - t) / seeds
        for c in CLASSES:
            a = acc[c]
            gen, trn, rnd = (np.concatenate(a[k]) for k in ("gen", "train", "random"))
            out.append(
                {
                    "n": n,
                    "condition": c,
                    "epochs": epochs,
                    "steps": epochs * per_batch,
                    "seeds": seeds,
                    "gen_median": float(np.median(gen)),
                    "gen_mean": float(gen.mean()),
                    "seed_medians": a["med"],
                    "train_median": float(np.median(trn)),
                    "train_mean": float(trn.mean()),
                    "random_median": float(np.median(rnd)),
                    "random_mean": float(rnd.mean()),
                    "valid": float(np.mean(a["valid"])),
                    "novel": float(np.mean(a["novel"])),
                    "unique": float(np.mean(a["unique"])),
                    "s_per_seed": secs,
                }
            )
        print(f"conditioning N={n}: {secs:.1f} s per seed", out[-3:], flush=True)
    return out, epochs_of


# --- (b) search -----------------------------------------------------------------------------
def search_rows(
    seeds: int, prior_seeds: int, n: int, prior_n: int, prior_epochs: int, cfg: dict, quick: bool
) -> list[dict[str, Any]]:
    space = NB201Space()
    budgets = [n // 2, n]
    other = strategies(n, quick)
    makers: dict[str, Any] = {
        "random": lambda seed, tmp: other["random"](),
        "evolution": lambda seed, tmp: other["evolution"](),
        "gan": lambda seed, tmp: RecordingGAN(n_evals=n, **cfg),
    }

    def with_prior(seed: int, tmp: Path) -> GANSearch:
        path = from_table(space, prior_n, seed, VALID).save(tmp / "nas_dataset.json", space)
        return RecordingGAN(
            n_evals=n, dataset=str(path), dataset_size=0, **{**cfg, "epochs": prior_epochs}
        )

    makers[f"gan, prior of {prior_n} table cells"] = with_prior
    rows = []
    for name, make in makers.items():
        n_seeds = prior_seeds if "prior" in name else seeds
        finals: dict[int, list[float]] = {b: [] for b in budgets}
        fills, asked = [], []
        t = time.perf_counter()
        for seed in range(n_seeds):
            with tempfile.TemporaryDirectory() as tmp:
                strategy = make(seed, Path(tmp))
                records = search(space, strategy, [], seed)
            for b in budgets:
                best = max(records[:b], key=lambda r: r["metric"]["benchmark"])
                finals[b].append(best["ground_truth"][TEST])
            if isinstance(strategy, RecordingGAN):
                fills.append(sum(r["n_random_fill"] for r in strategy.rounds_info))
                asked.append(sum(r["n_asked"] for r in strategy.rounds_info))
        secs = (time.perf_counter() - t) / n_seeds
        row: dict[str, Any] = {"strategy": name, "seeds": n_seeds, "s_per_run": secs}
        for b in budgets:
            v = finals[b]
            row[b] = (float(np.mean(v)), statistics.stdev(v) if len(v) > 1 else 0.0)
        row["generated"] = float(np.mean(asked)) if asked else None
        row["random_fill"] = float(np.mean(fills)) if fills else None
        rows.append(row)
        print(f"search {name}: {secs:.1f} s per run", row, flush=True)
    return rows


def quoted_msunas() -> list[str]:
    """The MSuNAS (nsga+as) rows of table (a) of the recorded search-strategies section."""
    if not RESULTS.exists():
        return []
    text = RESULTS.read_text()
    start, end = "<!-- search_strategies:start -->", "<!-- search_strategies:end -->"
    if start not in text or end not in text:
        return []
    table_a = text.split(start, 1)[1].split(end, 1)[0].split("\n(b)", 1)[0]
    return [ln for ln in table_a.splitlines() if ln.startswith("| nsga+as")]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="tiny sizes and 1 seed (smoke check)")
    ap.add_argument("--cond-seeds", type=int, default=2, help="seeds per NAS-dataset size in (a)")
    ap.add_argument("--steps", type=int, default=450, help="GAN steps per training in (a)")
    ap.add_argument("--seeds", type=int, default=20, help="seeds per strategy in (b)")
    ap.add_argument("--prior-seeds", type=int, default=10, help="seeds of the prior row in (b)")
    ap.add_argument("--prior-epochs", type=int, default=5, help="GAN epochs per round, prior row")
    ap.add_argument("--write-results", action="store_true")
    ap.add_argument("--results", type=Path, default=RESULTS, help="the RESULTS.md to update")
    args = ap.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run(args)
    finally:
        torch.set_num_threads(threads)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark for parsed arguments (`main`'s); the rows and the seconds."""
    cfg = gan_config()
    if args.quick:
        cfg.update(epochs=2, n_generate=32, emb_size=16, hidden_size=8, num_layers=2)
        sizes, cond_seeds, steps, m = [48], 1, 4, 32
        seeds, prior_seeds, n, prior_n, prior_epochs = 1, 1, 20, 48, 1
    else:
        sizes, cond_seeds, steps, m = [100, 300, 1000], args.cond_seeds, args.steps, 300
        seeds, prior_seeds, n, prior_n = args.seeds, args.prior_seeds, 100, 1000
        prior_epochs = args.prior_epochs
    clock = cpu_clock()
    t0 = time.perf_counter()
    cond, epochs_of = conditioning(sizes, cond_seeds, steps, m, cfg)
    srch = search_rows(seeds, prior_seeds, n, prior_n, prior_epochs, cfg, args.quick)
    total = time.perf_counter() - t0
    load = other_cores(clock)

    lines = [
        f"(a) generated cells per requested class: `cifar10_test_acc_200ep` (%) of the valid "
        f"draws ({m} draws per class and seed, {cond_seeds} seed(s) per N, pooled), against "
        f"{m} uniform random cells and the training set's cells of that class",
        "",
        "| N | epochs (steps) | class | gen median | gen mean | per-seed medians "
        "| train-class median / mean | random median / mean | valid | novel | unique |",
        "|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in cond:
        meds = " / ".join(f"{v:.2f}" for v in r["seed_medians"])
        lines.append(
            f"| {r['n']} | {r['epochs']} ({r['steps']}) | {r['condition']} | "
            f"{r['gen_median']:.2f} | {r['gen_mean']:.2f} | {meds} | "
            f"{r['train_median']:.2f} / {r['train_mean']:.2f} | "
            f"{r['random_median']:.2f} / {r['random_mean']:.2f} | {100 * r['valid']:.0f}% | "
            f"{100 * r['novel']:.0f}% | {r['unique']:.0f} |"
        )
    b1, b2 = n // 2, n
    lines += [
        "",
        f"(b) test accuracy (%) of the best-by-validation architecture after {b1} and {b2} "
        "evaluations, mean ± std over seeds",
        "",
        f"| strategy | seeds | {b1} evals | {b2} evals | generated / random top-up per run "
        "| s / run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in srch:
        gen = "-" if r["generated"] is None else f"{r['generated']:.1f} / {r['random_fill']:.1f}"
        lines.append(
            f"| {r['strategy']} | {r['seeds']} | {r[b1][0]:.2f} ± {r[b1][1]:.2f} | "
            f"{r[b2][0]:.2f} ± {r[b2][1]:.2f} | {gen} | {r['s_per_run']:.1f} |"
        )
    msunas = quoted_msunas()
    if msunas and not args.quick:
        lines += [
            "",
            "MSuNAS, quoted from table (a) of the search-strategies section (not run here):",
            "",
            "| strategy | seeds | 50 evals | 100 evals | 200 evals | s / run |",
            "|---|---:|---:|---:|---:|---:|",
            *msunas,
        ]
    text = "\n".join(lines)
    print(text)
    print(f"total {total:.0f} s; other load {load if load is None else round(load, 2)} cores")
    if args.write_results:
        gan_txt = ", ".join(f"{k} {v}" for k, v in cfg.items())
        section = "\n".join(
            [
                START,
                "## NAG's conditional generator on NAS-Bench-201 (table lookup, no training)",
                "",
                f"- Date: {time.strftime('%Y-%m-%d')}; machine: {cpu_model()}, 1 torch "
                f"thread, torch {torch.__version__}; whole run {total / 60:.1f} min, other "
                f"processes kept {load if load is None else f'{load:.2f}'} cores busy on average",
                "- Command: `.venv/bin/python benchmarks/nag_generator.py --write-results"
                + (" --quick" if args.quick else "")
                + "`",
                f"- GAN: `conf/search/gan.yaml` ({gan_txt}). (a) labels: terciles of "
                f"`{VALID}` of the N cells; epochs per N "
                + ", ".join(f"{k}: {v}" for k, v in epochs_of.items())
                + f" (about {steps} generator steps each). (b) the protocol of "
                "`search_strategies.py` (its `search` and strategy settings; random: batches "
                "of 10; evolution: population 20, top-10, 10 mutants + 10 children, p = 0.2); "
                f"gan: dataset phase of {n // 2} random cells (counted), 2 rounds of "
                f"generation, {cfg['epochs']} epochs per round; prior row: "
                f"`from_table(space, {prior_n}, seed)` saved with `NASDataset.save` "
                f"(`dataset_size=0`, not counted), {prior_epochs} epochs per round (about "
                f"{prior_epochs * (prior_n // cfg['batch_size'])} steps, instead of 100 "
                "epochs, to fit the CPU budget).",
                "",
                text,
                END,
            ]
        )
        write_section(args.results, START, END, section)
    return {"conditioning": cond, "search": srch, "seconds": total}


if __name__ == "__main__":
    main()
