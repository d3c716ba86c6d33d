"""Thin Lightning shell around NAG's least-squares conditional GAN (``gan.py``, §3.5).

`NAGLitModule` runs the reference's schedule: per batch one discriminator step, then a
generator step every ``n_critic`` batches, both with Adam(2e-4, betas (0.5, 0.999)).
`train_generator` fits it with a quiet Trainer on a dataset of (cells, labels) and returns the
trained `NAGGenerator`; `generate` (from `nasx.nag.sampling`, re-exported) samples from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from nasx.lit.early_exit import quiet, quiet_trainer
from nasx.nag.gan import NAGDiscriminator, NAGGenerator, SoftGraphs, encode_graphs
from nasx.nag.graph import CellGraph, GraphAdapter
from nasx.nag.sampling import generate as generate
from nasx.nag.sampling import seeded_torch

#: the reference's targets: real -> 0, fake -> 1 (inverted, equivalent under least squares)
REAL, FAKE = 0.0, 1.0


class NAGLitModule(L.LightningModule):
    """Trains NAG's generator and discriminator as a least-squares conditional GAN.

    Per batch of real cells with their labels y:
    ``L_D = (MSE(D(real, y), 0) + MSE(D(G(z, y'), y'), 1)) / 2`` with z ~ N(0, I) and each
    objective's fake label y' uniform over its classes; then, every ``n_critic`` batches,
    ``L_G = MSE(D(G(z, y'), y'), 0)`` with fresh z and y'. There is no gradient penalty, no
    weight clipping and, by default, no "real cells, wrong label" term. Noise, fake labels,
    dropout and the generator's draws use torch's global generator (`train_generator` seeds
    it).

    ``mismatch_weight = w > 0`` adds GAN-CLS's matching-aware term (Reed et al., 2016): real
    cells with a wrong label (every objective's class shifted by a random non-zero offset)
    are scored as fake, ``L_D = (MSE(D(real, y), 0) + (1 - w) MSE(D(fake), 1) +
    w MSE(D(real, y_wrong), 1)) / 2``. The discriminator then learns which cells go with
    which class from the data itself, not only from the generator's mistakes, and the
    conditioning appears in far fewer steps (not in NAG).

    Args:
        generator: the generator.
        discriminator: the discriminator (same objectives and classes).
        lr: Adam learning rate of both networks.
        betas: Adam betas.
        n_critic: discriminator steps per generator step.
        clip_grad_norm: gradient-norm clip of both networks after each backward (``None``:
            none). ``gan.py`` clips at 0.01; ``gan_multiobj.py`` has the clips commented out.
        mismatch_weight: weight of the wrong-label term (0: NAG's loss).
    """

    def __init__(
        self,
        generator: NAGGenerator,
        discriminator: NAGDiscriminator,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        n_critic: int = 1,
        clip_grad_norm: float | None = 0.01,
        mismatch_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if generator.n_label_classes != discriminator.n_label_classes:
            raise ValueError(
                f"generator classes {generator.n_label_classes} != discriminator classes "
                f"{discriminator.n_label_classes}"
            )
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        self.automatic_optimization = False
        self.generator, self.discriminator = generator, discriminator
        self.lr, self.n_critic = lr, n_critic
        self.betas = (float(betas[0]), float(betas[1]))
        if not 0.0 <= mismatch_weight < 1.0:
            raise ValueError(f"mismatch_weight must be in [0, 1), got {mismatch_weight}")
        self.clip_grad_norm, self.mismatch_weight = clip_grad_norm, mismatch_weight

    def _fake_batch(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(b, self.generator.latent_dim, device=self.device)
        y = torch.stack(
            [torch.randint(0, k, (b,), device=self.device) for k in self.generator.n_label_classes],
            1,
        )
        return z, y

    def _wrong_labels(self, labels: torch.Tensor) -> torch.Tensor:
        classes = torch.tensor(self.generator.n_label_classes, device=labels.device)
        shift = (torch.rand(labels.shape, device=labels.device) * (classes - 1)).long() + 1
        return (labels + shift) % classes

    def _step(self, opt: Any, loss: torch.Tensor, params: Any) -> None:
        opt.zero_grad()
        self.manual_backward(loss)
        if self.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm)
        opt.step()

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        *flat, labels = batch
        real = [SoftGraphs(*flat[i : i + 3]) for i in range(0, len(flat), 3)]
        b = labels.shape[0]
        opts = self.optimizers()
        assert isinstance(opts, list)
        opt_g, opt_d = opts
        g, d = self.generator, self.discriminator

        z, y = self._fake_batch(b)
        with torch.no_grad():
            fake = [cells.soft for cells in g(z, y)]
        d_real, d_fake = d(real, labels), d(fake, y)
        w = self.mismatch_weight
        loss_fake = F.mse_loss(d_fake, torch.full_like(d_fake, FAKE))
        if w > 0:
            d_wrong = d(real, self._wrong_labels(labels))
            loss_fake = (1 - w) * loss_fake + w * F.mse_loss(
                d_wrong, torch.full_like(d_wrong, FAKE)
            )
        loss_d = 0.5 * (F.mse_loss(d_real, torch.full_like(d_real, REAL)) + loss_fake)
        self._step(opt_d, loss_d, d.parameters())
        self.log("nag/d_loss", loss_d.detach(), on_step=False, on_epoch=True)

        if batch_idx % self.n_critic == 0:
            z, y = self._fake_batch(b)
            self.toggle_optimizer(opt_g)
            score = d([cells.soft for cells in g(z, y)], y)
            loss_g = F.mse_loss(score, torch.full_like(score, REAL))
            self._step(opt_g, loss_g, g.parameters())
            self.untoggle_optimizer(opt_g)
            self.log("nag/g_loss", loss_g.detach(), on_step=False, on_epoch=True)

    def configure_optimizers(self) -> Any:
        return [
            torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=self.betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=self.betas),
        ]


def graph_dataset(
    adapter: GraphAdapter, graphs: Sequence[Sequence[CellGraph]], labels: np.ndarray
) -> TensorDataset:
    """Rows ``(types, adjacency, n)`` per cell kind, then the ``(k,)`` labels."""
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if y.ndim == 1:
        y = y.unsqueeze(1)
    if len(y) != len(graphs):
        raise ValueError(f"{len(graphs)} architectures but {len(y)} label rows")
    if any(len(cells) != adapter.n_cells for cells in graphs):
        raise ValueError(f"every architecture needs {adapter.n_cells} cell graph(s)")
    tensors: list[torch.Tensor] = []
    for k in range(adapter.n_cells):
        soft = encode_graphs([cells[k] for cells in graphs], adapter.max_vertices, adapter.n_types)
        tensors += [soft.types, soft.adjacency, soft.n]
    return TensorDataset(*tensors, y)


def train_generator(
    adapter: GraphAdapter,
    graphs: Sequence[Sequence[CellGraph]],
    labels: np.ndarray,
    seed: int,
    epochs: int = 200,
    batch_size: int = 64,
    n_label_classes: Sequence[int] | None = None,
    generator: NAGGenerator | None = None,
    discriminator: NAGDiscriminator | None = None,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    n_critic: int = 1,
    clip_grad_norm: float | None = 0.01,
    mismatch_weight: float = 0.0,
    trainer_factory: Callable[..., L.Trainer] | None = None,
) -> NAGGenerator:
    """Train NAG's GAN on ``graphs`` with ``labels`` and return the generator in eval mode.

    The batches are reshuffled every epoch and the last partial batch is dropped (the
    reference truncates its dataset to a multiple of the batch size). Everything random
    (initialisation, shuffling, noise, labels, dropout, draws) follows from ``seed``; torch's
    global generators are restored afterwards.

    Args:
        adapter: the space's graph adapter.
        graphs: the cells of each architecture (`GraphAdapter.to_graphs`).
        labels: ``(N,)`` accuracy classes or ``(N, k)`` classes per objective
            (`nasx.nag.labels.nag_labels`).
        seed: the training seed.
        epochs: passes over the data (``n_epochs``).
        batch_size: real cells per batch.
        n_label_classes: classes per objective (default: the generator's, else 3 each).
        generator: the generator to train (default `NAGGenerator.for_adapter` with the
            reference's sizes, initialised from ``seed``). A network passed in keeps its
            weights: build it under `nasx.nag.sampling.seeded_torch` for a run that depends
            on the seed alone.
        discriminator: the discriminator (default `NAGDiscriminator.for_adapter`).
        lr: Adam learning rate.
        betas: Adam betas.
        n_critic: discriminator steps per generator step.
        clip_grad_norm: gradient-norm clip (0.01 as ``gan.py``; ``None`` as
            ``gan_multiobj.py``).
        mismatch_weight: weight of GAN-CLS's wrong-label term (0: NAG's loss; see
            `NAGLitModule`).
        trainer_factory: ``factory(max_epochs=...)`` giving the Trainer (default
            `nasx.lit.early_exit.quiet_trainer` on the CPU).
    """
    data = graph_dataset(adapter, graphs, labels)
    if len(data) < batch_size:
        raise ValueError(f"{len(data)} architectures are fewer than batch_size={batch_size}")
    y = data.tensors[-1]
    if n_label_classes is not None:
        classes = tuple(n_label_classes)
    elif generator is not None:
        classes = generator.n_label_classes
    else:
        classes = (3,) * y.shape[1]
    if len(classes) != y.shape[1]:
        raise ValueError(f"labels have {y.shape[1]} objective(s) but the classes are {classes}")
    if bool((y < 0).any()) or bool((y >= torch.tensor(classes)).any()):
        raise ValueError(f"labels must be class indices below {classes}")
    factory = quiet_trainer if trainer_factory is None else trainer_factory
    with seeded_torch(seed):
        g = NAGGenerator.for_adapter(adapter, classes) if generator is None else generator
        d = (
            NAGDiscriminator.for_adapter(adapter, classes)
            if discriminator is None
            else discriminator
        )
        module = NAGLitModule(g, d, lr, betas, n_critic, clip_grad_norm, mismatch_weight)
        loader = DataLoader(
            data,
            batch_size=batch_size,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(seed),
        )
        with quiet():
            factory(max_epochs=epochs).fit(module, train_dataloaders=loader)
    return g.eval()
