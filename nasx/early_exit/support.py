"""NACHOS's support set: a class-balanced slice of the training set, redrawn every epoch.

From epoch ``n_epoch_gamma`` on, each epoch draws ``int(fraction * N) // n_classes`` training
samples of every class (reference ``extract_balanced_subset``: a shuffle, then the first
samples of each class). They are held out of that epoch's training and give the support matrix
``S[class, exit]`` (`nasx.early_exit.losses.support_matrix`). The draw depends only on
``(seed, epoch)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from nasx.data.base import EpochSeededSampler


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def dataset_targets(dataset: Dataset[Any]) -> torch.Tensor:
    """The label of every sample: ``dataset.targets`` when present, else read one by one."""
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return torch.as_tensor(targets).long()
    if isinstance(dataset, Subset):
        return dataset_targets(dataset.dataset)[torch.as_tensor(dataset.indices)]
    return torch.as_tensor([int(dataset[i][1]) for i in range(len(dataset))])  # type: ignore[arg-type]


def balanced_support(
    targets: torch.Tensor, n_classes: int, fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(support indices, remaining indices)`` of one class-balanced draw."""
    n = len(targets)
    per_class = int(fraction * n) // n_classes
    perm = torch.randperm(n, generator=generator)
    labels = targets[perm]
    picked = [perm[labels == c][:per_class] for c in range(n_classes)]
    support = torch.cat(picked) if picked else torch.zeros(0, dtype=torch.long)
    keep = torch.ones(n, dtype=torch.bool)
    keep[support] = False
    return support, torch.nonzero(keep).squeeze(1)


class SupportSplit:
    """The support subset of each epoch and the training loader without it.

    Args:
        loader: the training loader; its dataset, batch size, workers, collate function and
            ``drop_last`` are reused.
        n_classes: number of classes.
        seed: the draws depend on ``(seed, epoch)`` only.
        fraction: share of the training set drawn as support (NACHOS: 0.1).
        targets: the training labels (default: `dataset_targets`).
    """

    def __init__(
        self,
        loader: DataLoader[Any],
        n_classes: int,
        seed: int,
        fraction: float = 0.1,
        targets: Sequence[int] | torch.Tensor | None = None,
    ) -> None:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"support fraction must be in (0, 1), got {fraction}")
        self.loader, self.n_classes, self.seed, self.fraction = loader, n_classes, seed, fraction
        self.targets = (
            dataset_targets(loader.dataset) if targets is None else torch.as_tensor(targets).long()
        )
        if int(fraction * len(self.targets)) // n_classes < 1:
            raise ValueError(
                f"a support fraction of {fraction} of {len(self.targets)} training samples "
                f"leaves no sample for each of {n_classes} classes: raise the fraction or the "
                "training set, or train without the support set"
            )
        self._draws: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def draw(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(support indices, training indices)`` of ``epoch`` (cached)."""
        if epoch not in self._draws:
            gen = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch, 0))
            draw = balanced_support(self.targets, self.n_classes, self.fraction, gen)
            self._draws = {epoch: draw}
        return self._draws[epoch]

    def _loader(self, indices: torch.Tensor, shuffle_seed: int | None) -> DataLoader[Any]:
        subset = Subset(self.loader.dataset, indices.tolist())
        sampler = None if shuffle_seed is None else EpochSeededSampler(len(subset), shuffle_seed)
        return DataLoader(
            subset,
            batch_size=self.loader.batch_size,
            sampler=sampler,
            num_workers=self.loader.num_workers,
            collate_fn=self.loader.collate_fn,
            drop_last=self.loader.drop_last and shuffle_seed is not None,
        )

    def support_loader(self, epoch: int) -> DataLoader[Any]:
        """The support samples of ``epoch``, unshuffled."""
        return self._loader(self.draw(epoch)[0], None)

    def train_loader(self, epoch: int) -> DataLoader[Any]:
        """The training samples of ``epoch`` (its support held out), shuffled by the seed."""
        return self._loader(self.draw(epoch)[1], _epoch_seed(self.seed, epoch, 1))
