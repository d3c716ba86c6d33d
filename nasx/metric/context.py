"""What a metric reads (`MetricContext`) and the one step every weight-sharing metric shares.

`MetricContext.calibrated` is the inherited-weights candidate as GeNAS/RLNAS/FlatNAS score it:
extract the sub-network, draw its data seed, recalibrate BN (or fine-tune it), eval mode. The
valid images are cut into device batches once per context (`valid_loader`), for every metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nasx.data.base import ImageData
from nasx.data.resolution import ResizedLoader, resize_batch
from nasx.metric.bn import recalibrate_bn
from nasx.optim.finetune import FinetuneSpec
from nasx.search_space.base import Architecture, SearchSpace
from nasx.supernet.base import Supernet


@dataclass(frozen=True)
class EvalResult:
    """Outcome of one pass over a loader.

    ``loss`` is the mean over batches of each batch's mean cross-entropy (GeNAS's form: the
    last, smaller batch weighs as much as the others); ``accuracy`` is top-1 as a fraction.
    """

    loss: float
    accuracy: float
    images: int


class EvalRunner(Protocol):
    """Runs networks over loaders (Lightning loops in the pipeline, bare loops in tests)."""

    def evaluate(self, net: nn.Module, loader: DataLoader) -> EvalResult:
        """Evaluate ``net`` (already in the wanted train/eval mode) on ``loader``."""
        ...

    def finetune(self, net: nn.Module, loader: DataLoader, spec: FinetuneSpec) -> float:
        """Fine-tune ``net`` in place as ``spec`` says (left in eval mode); the mean loss."""
        ...

    def train_early_exit(
        self,
        net: nn.Module,
        recipe: Any,
        train_loader: Any,
        valid_loader: DataLoader,
        seed: int,
        max_batches: int | None = None,
    ) -> Any:
        """Train an early-exit network in place (`nasx.lit.early_exit.train_early_exit`).

        ``recipe`` is an `nasx.early_exit.recipe.EarlyExitRecipe`; ``max_batches`` caps each
        training epoch. Returns the `nasx.lit.early_exit.EarlyExitResult`.
        """
        ...


_Batch = tuple[torch.Tensor, torch.Tensor]


class _Batches(Dataset[_Batch]):
    """Ready-made ``(x, y)`` batches; served by a ``batch_size=None`` loader as they are."""

    def __init__(self, batches: list[_Batch]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> _Batch:
        return self.batches[i]


class DeviceBatchCache:
    """The first ``limit`` images of a split, cut once into eval batches on a device.

    `loader` returns a ``DataLoader`` over those batches (no per-image indexing or collation;
    the batches are the ones of ``ImageData.eval_loader(split, limit)``, so every loss and
    accuracy is bit-identical to it). One entry is kept per dataset object, split, limit, batch
    size and device (a dataset's splits never change after `ImageData.setup`); entries are
    dropped when the owner is copied or pickled.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], DataLoader[_Batch]] = {}

    def loader(
        self, data: ImageData, split: str, limit: int, device: torch.device
    ) -> DataLoader[_Batch]:
        """A loader over the cached batches (built on the first call for this key)."""
        key = (id(data), split, limit, data.eval_batch_size, str(device))
        if key not in self._entries:
            x, y = data.split(split, limit)
            xs, ys = x.to(device), y.to(device)
            bs = data.eval_batch_size
            batches = list(zip(torch.split(xs, bs), torch.split(ys, bs), strict=True))
            self._entries[key] = DataLoader(_Batches(batches), batch_size=None, shuffle=False)
        return self._entries[key]

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._entries = {}


@dataclass
class MetricContext:
    """Everything a metric may read; built once per run by the pipeline.

    Attributes:
        space: the search space.
        supernet: the trained supernet (final weights) on ``device``, or ``None`` when the
            metric needs none.
        data: the dataset, already set up.
        runner: how evaluation passes are run.
        init_state: supernet weights before training (the angle metric needs them).
        device: where networks run.
    """

    space: SearchSpace
    supernet: Supernet | None
    data: ImageData
    runner: EvalRunner
    init_state: Mapping[str, torch.Tensor] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _final_state: dict[str, torch.Tensor] | None = None
    _batches: DeviceBatchCache = field(default_factory=DeviceBatchCache)
    _resized: dict[tuple[Any, ...], DataLoader[_Batch]] = field(default_factory=dict)

    @property
    def final_state(self) -> dict[str, torch.Tensor]:
        """CPU copy of the supernet's weights (cached)."""
        if self._final_state is None:
            self._final_state = {
                k: v.detach().cpu() for k, v in self.trained_supernet.state_dict().items()
            }
        return self._final_state

    @property
    def trained_supernet(self) -> Supernet:
        """The supernet; raises ``ValueError`` naming the fix when the context holds none."""
        if self.supernet is None:
            raise ValueError(
                "this metric reads inherited weights, but no trained supernet was loaded: "
                "train or load one (stages=[supernet,...] or supernet.checkpoint=<path>)"
            )
        return self.supernet

    def valid_loader(self, images: int, arch: Architecture | None = None) -> DataLoader[_Batch]:
        """The first ``images`` valid images as device batches, cut once per context.

        With ``arch``, at that architecture's input resolution (`SearchSpace.input_shape_of`),
        resized and centre-cropped as NSGANetV2 evaluates (`nasx.data.resolution`).
        """
        loader = self._batches.loader(self.data, "valid", images, self.device)
        size = self._resolution(arch)
        if size is None:
            return loader
        key = ("valid", images, size, str(self.device))
        if key not in self._resized:
            batches = [(resize_batch(x, size, train=False), y) for x, y in loader]
            self._resized[key] = DataLoader(_Batches(batches), batch_size=None, shuffle=False)
        return self._resized[key]

    def corrupted_valid_loader(
        self,
        images: int,
        corruptions: Sequence[str],
        severities: Sequence[int],
        arch: Architecture | None = None,
    ) -> DataLoader[_Batch]:
        """The first ``images`` valid images under each corruption and severity, as batches.

        FlatNAS's out-of-distribution search scores candidates on corrupted data. Every
        (corruption, severity) pair corrupts all ``images`` (so the split holds
        ``images * len(corruptions) * len(severities)`` images, in that order). The valid split
        comes from the training images, which the official CIFAR-C files do not cover, so the
        corruptions are always generated (`nasx.ood.generate_corrupted`, CIFAR-C's severity
        constants) with the dataset's `corruption_source` seed and cache. Built once per
        context; with ``arch``, resized to its input resolution as `valid_loader`.
        """
        from nasx.ood import generate_corrupted, to_network_input, to_pixels

        key = ("corrupted", images, tuple(corruptions), tuple(severities), str(self.device))
        if key not in self._resized:
            mean, std = getattr(self.data, "mean", None), getattr(self.data, "std", None)
            x, y = self.data.split("valid", images)
            source = self.data.corruption_source
            if mean is None or std is None or source is None or tuple(x.shape[1:]) != (3, 32, 32):
                raise ValueError(
                    "metric.valid_corruptions needs a CIFAR dataset (dataset=cifar10 or "
                    f"cifar100) prepared at 32 px, got {type(self.data).__name__} with images "
                    f"{tuple(x.shape[1:])}: use such a dataset or metric.valid_corruptions=null"
                )
            if len(x) == 0:
                raise ValueError(
                    "metric.valid_corruptions needs valid images: set dataset.valid_fraction > 0"
                )
            pixels, labels = to_pixels(x, mean, std), y.numpy()
            xs, ys = [], []
            for c in corruptions:
                for sev in severities:
                    out = generate_corrupted(
                        pixels,
                        labels,
                        c,
                        int(sev),
                        source.seed,
                        source.cache_dir,
                        f"{source.dataset}-valid{self.data.split_seed}",
                    )
                    xs.append(to_network_input(out.images, mean, std, 32))
                    ys.append(torch.as_tensor(out.labels))
            bs = self.data.eval_batch_size
            cx, cy = torch.cat(xs).to(self.device), torch.cat(ys).to(self.device)
            batches = list(zip(torch.split(cx, bs), torch.split(cy, bs), strict=True))
            self._resized[key] = DataLoader(_Batches(batches), batch_size=None, shuffle=False)
        loader = self._resized[key]
        size = self._resolution(arch)
        if size is None:
            return loader
        rkey = (*key, size)
        if rkey not in self._resized:
            batches = [(resize_batch(x, size, train=False), y) for x, y in loader]
            self._resized[rkey] = DataLoader(_Batches(batches), batch_size=None, shuffle=False)
        return self._resized[rkey]

    def train_loader(self, seed: int, arch: Architecture | None = None) -> Any:
        """Training batches shuffled by ``seed``, at ``arch``'s input resolution when given."""
        loader = self.data.train_loader(seed)
        size = self._resolution(arch)
        return loader if size is None else ResizedLoader(loader, size, train=True)

    def _resolution(self, arch: Architecture | None) -> int | None:
        """``arch``'s input size when it differs from the data's, else ``None``."""
        if arch is None:
            return None
        size = int(self.space.input_shape_of(arch)[-1])
        return None if size == int(self.space.input_shape[-1]) else size

    def calibrated(
        self,
        arch: Architecture,
        generator: torch.Generator,
        recal_images: int,
        bn_momentum: float | None = 0.1,
        finetune: FinetuneSpec | None = None,
        data_seed: int | None = None,
        recalibrate_first: bool = False,
        prepare: Callable[[nn.Module], None] | None = None,
    ) -> nn.Module:
        """``arch`` with inherited weights, ready to score, in eval mode.

        One seed is drawn from ``generator`` for the training loader (``data_seed`` fixes it
        instead: NSGANetV2 recalibrates every candidate on the same subset). ``prepare`` edits
        the network first (NSGANetV2 resets the classifier). With ``finetune`` (and at least
        one epoch) the candidate is fine-tuned and keeps the BN statistics of its own training
        (FlatNAS), or is recalibrated first and then fine-tuned (``recalibrate_first``,
        NSGANetV2 §3); otherwise BN is recalibrated on ``recal_images`` images (GeNAS;
        ``bn_momentum`` 0.1 is its EMA, ``None`` an exact average). Training batches come at
        the architecture's input resolution (`train_loader`).
        """
        net = self.trained_supernet.extract(arch)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        loader = self.train_loader(seed if data_seed is None else data_seed, arch)
        if prepare is not None:
            prepare(net)
        tune = finetune is not None and finetune.epochs > 0
        if not tune or recalibrate_first:
            recalibrate_bn(net, loader, recal_images, bn_momentum, self.device)
        if tune:
            assert finetune is not None
            self.runner.finetune(net, loader, finetune)
        return net.eval()
