"""Serving a candidate at its own input resolution (OFA MobileNetV3's resolution gene).

The dataset is set up once at the space's largest input size; a candidate with resolution r
gets its batches resized on the fly, as NSGANetV2's evaluator sets the active image size
(§3): evaluation batches by ``Resize(ceil(r / 0.875)) + CenterCrop(r)``, training batches
(BN recalibration, fine-tuning) by ``Resize(r)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as TF

#: evaluation resize ratio: images are resized to r / 0.875 and centre-cropped to r
EVAL_CROP_RATIO = 0.875


def resize_batch(x: torch.Tensor, size: int, train: bool) -> torch.Tensor:
    """``x`` (N, C, H, W) at ``size``: resized (train) or resized to size/0.875 and cropped."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if train:
        return TF.resize(x, [size, size], antialias=True)
    big = math.ceil(size / EVAL_CROP_RATIO)
    return TF.center_crop(TF.resize(x, [big, big], antialias=True), [size, size])


class ResizedLoader:
    """A loader whose image batches are resized to one resolution (`resize_batch`).

    Iterates like the wrapped ``DataLoader`` and keeps its length and batch size, so it can
    stand wherever the runner or BN recalibration expects a loader.
    """

    def __init__(self, loader: DataLoader[Any], size: int, train: bool) -> None:
        self.loader, self.size, self.train = loader, size, train
        self.batch_size = loader.batch_size

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            yield resize_batch(x, self.size, self.train), y
