"""NAG as a search strategy: learn good cells from a NAS dataset, then generate new ones.

NAG (Jing, Xu, Zhang, 2022; seed-nag.md) trains a conditional GAN on a "NAS dataset" of
architectures labelled with accuracy classes (and parameter classes), then *generates*
architectures for a requested class instead of searching one by one. As a strategy:

1. **Dataset.** A NAS dataset file (``search.dataset``: `nasx.nag.dataset.NASDataset`, from
   ``stages=[nas_dataset]``) and/or a first phase that asks ``dataset_size`` random
   architectures, evaluated with the run's metric like any candidate. With
   ``metric=benchmark`` on NAS-Bench-201 that draws them from the table (no training); with a
   supernet metric it is the reference's one-shot dataset (§2).
2. **Generator.** NAG's least-squares conditional GAN (`nasx.lit.nag.train_generator`) on
   every architecture known so far, labelled by terciles of the metric (and of the
   parameter count for ``condition=<acc>+<params>``).
3. **Generation.** ``n_generate`` draws for ``condition``; the first valid architectures that
   are new (not in the dataset or the archive) are asked, up to this round's share of the
   budget. With ``rounds > 1`` the generator is retrained on the grown archive each round.

Everything random follows from the strategy's seed and the values told, so a resumed search
replays to the same state (the generator is retrained on replay, deterministically).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nasx.errors import NasxError
from nasx.evaluator import FAILED_VALUE
from nasx.nag.adapters import adapter_for
from nasx.nag.gan import NAGDiscriminator, NAGGenerator
from nasx.nag.graph import GraphAdapter
from nasx.nag.labels import Condition, assign_classes, class_thresholds, params_values
from nasx.nag.sampling import generate, seeded_torch
from nasx.search.base import SearchStrategy
from nasx.search_space.base import Architecture

log = logging.getLogger(__name__)

NO_DATASET = (
    "search=gan with search.dataset_size=0 learns from a NAS dataset: pass "
    "search.dataset=<nas_dataset.json>, add nas_dataset to stages=[...], or set "
    "search.dataset_size >= 3"
)
#: more draws, as multiples of ``n_generate``, before a round tops up with random ones
MAX_EXTRA_DRAWS = 4


class GANSearch(SearchStrategy):
    """``search=gan``: NAG's conditional architecture generator (seed-nag.md §2-§4).

    The reference's bugs are fixed (§8): both cells of a pair are kept, parameter classes are
    of true parameter counts (``params=output_in_degree`` is the reference's proxy), pruning
    never deletes an input, generation samples from the model's outputs with dropout off
    (``generation_dropout=true`` keeps it on: the reference never switches to evaluation
    mode), and the pick among generated architectures is by the run's metric, never the test set.

    Args:
        n_evals: budget (distinct architectures evaluated, the first phase included).
        seed: own seed (``None``: the run seed).
        dataset: path of a NAS dataset file (``nas_dataset/nas_dataset.json``) whose
            architectures train the generator without being evaluated (``None``: none).
        dataset_size: random architectures of the first phase (``None``: half of
            ``n_evals``; 0: none, then ``dataset`` is required).
        condition: the requirement, ``high_acc`` or e.g. ``high_acc+small_params``
            (`nasx.nag.labels.Condition`); its terms fix whether the GAN is single- or
            multi-objective.
        rounds: generate-and-evaluate rounds, the generator retrained before each.
        n_generate: draws per round (the reference: 100 per class).
        params: ``count`` (parameters of the stand-alone network) or ``output_in_degree``
            (the reference's stored "params", §2.6).
        epochs: GAN epochs per round (``n_epochs``, 200).
        batch_size: real architectures per GAN batch (64); at most the dataset's size.
        lr: Adam learning rate of both networks (2e-4).
        clip_grad_norm: gradient-norm clip (``gan.py``: 0.01; ``None``: none, as
            ``gan_multiobj.py``).
        mismatch_weight: GAN-CLS's wrong-label term (0: NAG's loss).
        emb_size: node-state size of both networks (250).
        hidden_size: graph-embedding size of both networks (56).
        num_layers: message-passing layers of both networks (3).
        dropout: dropout of both networks while training (0.5).
        straight_through: show D the chosen graphs with the probabilities' gradient (the
            reference's commented-out estimator) instead of the soft probabilities.
        sample: draw types and edges from the model's probabilities (``False``: the
            reference's argmax and ``p > 0.5``).
        generation_dropout: keep dropout on while generating (the reference's behaviour).
    """

    def __init__(
        self,
        n_evals: int = 100,
        seed: int | None = None,
        dataset: str | None = None,
        dataset_size: int | None = None,
        condition: str = "high_acc",
        rounds: int = 1,
        n_generate: int = 300,
        params: Literal["count", "output_in_degree"] = "count",
        epochs: int = 200,
        batch_size: int = 64,
        lr: float = 2e-4,
        clip_grad_norm: float | None = 0.01,
        mismatch_weight: float = 0.0,
        emb_size: int = 250,
        hidden_size: int = 56,
        num_layers: int = 3,
        dropout: float = 0.5,
        straight_through: bool = False,
        sample: bool = True,
        generation_dropout: bool = False,
    ) -> None:
        super().__init__(n_evals, seed)
        try:
            self.condition = Condition.parse(condition)
        except ValueError as err:
            raise ValueError(f"search.condition: {err}") from err
        if dataset_size is None:
            dataset_size = n_evals // 2
        checks = (
            (dataset_size >= 0, f"search.dataset_size must be >= 0, got {dataset_size}"),
            (dataset_size < n_evals, "search.dataset_size must be below search.n_evals"),
            (rounds >= 1 and n_generate >= 1, "search.rounds and search.n_generate must be >= 1"),
            (epochs >= 1 and batch_size >= 2, "search.epochs >= 1 and search.batch_size >= 2"),
            (params in ("count", "output_in_degree"), "search.params: count or output_in_degree"),
            (0.0 <= dropout < 1.0, f"search.dropout must be in [0, 1), got {dropout}"),
        )
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        self.dataset_path = None if dataset in (None, "") else Path(str(dataset))
        self.dataset_size, self.rounds, self.n_generate = dataset_size, rounds, n_generate
        self.params = params
        self.batch_size = batch_size
        self.gan = {
            "epochs": epochs,
            "lr": lr,
            "clip_grad_norm": clip_grad_norm,
            "mismatch_weight": mismatch_weight,
        }
        self.net = {"emb_size": emb_size, "hidden_size": hidden_size, "dropout": dropout}
        self.num_layers = num_layers
        self.straight_through, self.sample = straight_through, sample
        self.generation_dropout = generation_dropout
        self.adapter: GraphAdapter
        self._prior: list[Architecture] = []
        self._prior_acc = np.zeros(0)
        self._prior_params = np.zeros(0)
        self._told: dict[tuple[int, ...], float] = {}
        self._told_archs: list[Architecture] = []
        self._evaluated: set[tuple[int, ...]] = set()
        self._round = 0
        self._phase_done = False
        self._info: dict[str, Any] = {}

    # --- setup ----------------------------------------------------------------------------
    def needs_dataset(self) -> bool:
        """Whether nothing gives the generator data: no first phase and no dataset file."""
        return self.dataset_size == 0 and self.dataset_path is None

    def _setup(self, seed: int) -> None:
        if self.needs_dataset():
            raise NasxError(NO_DATASET)
        self.adapter = adapter_for(self.space)
        if self.dataset_path is not None:
            from nasx.nag.dataset import NASDataset

            data = NASDataset.load(self.dataset_path, self.space)
            self._prior = list(data.archs)
            self._prior_acc = np.asarray(data.accuracy, dtype=float)
            self._prior_params = np.asarray(data.params, dtype=float)
            if self.params == "output_in_degree":
                self._prior_params = params_values(self.adapter, self._prior, self.params)
        self._phase_done = self.dataset_size == 0

    # --- ask / tell -------------------------------------------------------------------------
    def _ask(self) -> list[Architecture]:
        if not self._phase_done:
            return self._random(self.dataset_size)
        if self._round >= self.rounds:
            return []
        left = self.n_evals - len(self._evaluated)
        if left <= 0:
            return []
        quota = math.ceil(left / (self.rounds - self._round))
        self._round += 1
        return self._generate(quota)

    def _tell(self, archs: list[Architecture], F: np.ndarray) -> None:
        self._phase_done = True
        G = self._G
        for i, arch in enumerate(archs):
            self._evaluated.add(arch.genes)
            value = float(F[i, 0])
            if not np.isfinite(value) or value >= FAILED_VALUE:
                continue  # a failed evaluation teaches the generator nothing
            if G.shape[1] and float(G[i].max()) > 0:
                value = math.inf  # infeasible: labelled with the worst class
            if arch.genes not in self._told:
                self._told_archs.append(arch)
            self._told[arch.genes] = value

    def info(self) -> dict[str, Any]:
        """The last round's generator report (sizes, class thresholds, valid/new counts)."""
        return dict(self._info)

    def _rescore(self, F: dict[tuple[int, ...], np.ndarray]) -> None:
        for genes, row in F.items():
            if genes in self._told:
                self._told[genes] = float(row[0])

    # --- the phases -------------------------------------------------------------------------
    def _known(self) -> set[tuple[int, ...]]:
        return {a.genes for a in self._prior} | self._evaluated

    def _random(self, n: int) -> list[Architecture]:
        known, out = self._known(), list[Architecture]()
        for _ in range(100 * n):
            if len(out) == n:
                break
            a = self.space.sample(self.rng)
            if a.genes not in known:
                known.add(a.genes)
                out.append(a)
        return out

    def _training_set(self) -> tuple[list[Architecture], np.ndarray, np.ndarray | None]:
        """Known architectures, their accuracy-like values (higher better) and params."""
        archs = self._prior + self._told_archs
        told = -np.asarray([self._told[a.genes] for a in self._told_archs], dtype=float)
        acc = np.concatenate([self._prior_acc, told])
        acc[~np.isfinite(acc)] = np.min(acc[np.isfinite(acc)], initial=0.0) - 1.0
        if self.condition.params is None:
            return archs, acc, None
        told_params = params_values(self.adapter, self._told_archs, self.params)
        return archs, acc, np.concatenate([self._prior_params, told_params])

    def fit_generator(
        self, archs: list[Architecture], labels: np.ndarray, seed: int, epochs: int | None = None
    ) -> NAGGenerator:
        """NAG's GAN with this strategy's networks and settings, trained on ``archs``.

        ``labels`` is ``(N,)`` or ``(N, k)``: one class (of 3) per objective, as
        `nasx.nag.labels` gives them; ``epochs`` overrides ``search.epochs``. Everything
        random follows from ``seed``. Needs `setup` (the space's graph adapter).
        """
        from nasx.lit.nag import train_generator  # Lightning only when training

        classes = (3,) * np.asarray(labels).reshape(len(archs), -1).shape[1]
        with seeded_torch(seed):
            g = NAGGenerator.for_adapter(
                self.adapter,
                classes,
                num_layers=self.num_layers,
                sample=self.sample,
                straight_through=self.straight_through,
                **self.net,
            )
            d = NAGDiscriminator.for_adapter(
                self.adapter,
                classes,
                emb_size=self.net["emb_size"],
                hidden_size=self.net["hidden_size"],
                gnn_num_layers=self.num_layers,
                gnn_dropout=self.net["dropout"],
                mlp_dropout=self.net["dropout"],
            )
        gan = dict(self.gan) if epochs is None else dict(self.gan, epochs=epochs)
        return train_generator(
            self.adapter,
            [self.adapter.to_graphs(a) for a in archs],
            labels,
            seed=seed,
            n_label_classes=classes,
            generator=g,
            discriminator=d,
            batch_size=min(self.batch_size, len(archs)),
            **gan,  # type: ignore[arg-type]
        )

    def _generate(self, quota: int) -> list[Architecture]:
        archs, acc, params = self._training_set()
        if len(archs) < 3:
            raise NasxError(
                f"search=gan has {len(archs)} usable architecture(s) to learn from; raise "
                "search.dataset_size or give search.dataset=<nas_dataset.json>"
            )
        acc_t = class_thresholds(acc)
        cols = [assign_classes(acc, acc_t)]
        thresholds = {"acc": acc_t.tolist()}
        if params is not None:
            par_t = class_thresholds(params)
            cols.append(assign_classes(params, par_t))
            thresholds["params"] = par_t.tolist()
        labels = np.stack(cols, axis=1)
        train_seed, gen_seed = (int(s) for s in self.rng.integers(0, 2**31 - 1, size=2))
        log.info(
            "search=gan round %d: training the generator on %d architectures",
            self._round,
            len(archs),
        )
        generator = self.fit_generator(archs, labels, train_seed)
        known, out = self._known(), list[Architecture]()
        drawn = valid = 0
        for k in range(1 + MAX_EXTRA_DRAWS):
            made = generate(
                generator,
                self.adapter,
                self.condition,
                self.n_generate,
                seed=gen_seed + k,
                dropout=self.generation_dropout,
            )
            drawn, valid = drawn + self.n_generate, valid + len(made)
            for a in made:
                if a.genes not in known:
                    known.add(a.genes)
                    out.append(a)
            if len(out) >= quota:
                break
        new = len(out)
        out = out[:quota]
        fill = self._random(quota - len(out)) if len(out) < quota else []
        if fill:
            log.warning(
                "search=gan: the generator gave %d new architecture(s) in %d draws; %d random "
                "one(s) fill the round",
                new,
                drawn,
                len(fill),
            )
        self._info = {
            "round": self._round,
            "condition": str(self.condition),
            "n_train": len(archs),
            "class_thresholds": thresholds,
            "n_drawn": drawn,
            "n_valid": valid,
            "n_new": new,
            "n_asked": len(out),
            "n_random_fill": len(fill),
        }
        return out + fill
