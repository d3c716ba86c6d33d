"""Batch-level augmentation and resizing of retraining batches (plain PyTorch).

The datasets hand out normalised tensors; the retraining recipes add the seeds' augmentation
on whole batches, drawing every random choice from the global torch generator, which the
Lightning shell reseeds from ``(seed, step)`` before each step, so a resumed run draws what
the uninterrupted one drew.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from nasx.data.resolution import resize_batch

#: the values of ``retrain.augment``
AUGMENTS = ("none", "standard", "cutout", "autoaugment_cutout")


def cutout(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero one ``size`` x ``size`` square per image of ``x`` (N, C, H, W), after normalisation.

    DARTS/NSGANetV2 ``Cutout``: the centre is uniform over the whole image and the square is
    clipped at the border, so near an edge less than size² pixels are erased.
    ``v2.RandomErasing`` cannot express that: it only places squares that lie wholly inside
    the image, which erases more on average and never near-border fragments.
    """
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), device=x.device)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    half = size // 2  # DARTS: np.clip(y - length // 2, 0, h) .. np.clip(y + length // 2, 0, h)
    inside = (rows >= cy - half) & (rows < cy + half) & (cols >= cx - half) & (cols < cx + half)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def crop_flip(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Random crop of each image after zero padding by ``pad``, then a random horizontal flip.

    torchvision's ``RandomCrop(size, padding=pad)`` + ``RandomHorizontalFlip()`` per image,
    drawn for the whole batch at once.
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    i = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    j = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    rows = (i.view(n, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (j.view(n, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    idx_n = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    idx_c = torch.arange(c, device=x.device).view(1, c, 1, 1)
    out = padded[idx_n, idx_c, rows, cols]
    flip = torch.rand(n, device=x.device) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), out.flip(-1), out)


class BatchAugment:
    """The augmentation of ``retrain.augment`` on batches of normalised images.

    - ``none``: the batch as the dataset gives it (its own ``dataset.augment``);
    - ``standard``: random crop with zero padding of 1/8 of the size (4 px at 32) and a flip
      (DARTS / NSGANetV2 CIFAR);
    - ``cutout``: ``standard`` then `cutout` (DARTS, GeNAS/RLNAS and NAG CIFAR retraining);
    - ``autoaugment_cutout``: ``standard``, torchvision's ``AutoAugment`` with the CIFAR-10
      policy on uint8 pixels, then `cutout` (NSGANetV2 ``train_cifar.py`` with
      ``--autoaugment --cutout``).

    Crop, flip and AutoAugment act on the un-normalised pixels (the seeds augment PIL images
    before ``Normalize``); cutout acts after normalisation, as in the seeds.

    Args:
        kind: one of `AUGMENTS`.
        mean: the dataset's per-channel mean (``None``: only ``none`` is possible).
        std: the dataset's per-channel standard deviation.
        cutout_size: side of the cutout square in pixels (16 in every seed).
    """

    def __init__(
        self,
        kind: str,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        cutout_size: int = 16,
    ) -> None:
        if kind not in AUGMENTS:
            raise ValueError(f"retrain.augment={kind!r}: use one of {', '.join(AUGMENTS)}")
        if kind != "none" and (mean is None or std is None):
            raise ValueError(
                f"retrain.augment={kind} needs the dataset's mean and std to undo its "
                "normalisation: use retrain.augment=none with this dataset"
            )
        self.kind, self.cutout_size = kind, int(cutout_size)
        self.mean = torch.tensor(list(mean or [0.0])).view(1, -1, 1, 1)
        self.std = torch.tensor(list(std or [1.0])).view(1, -1, 1, 1)
        self.policy = (
            v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10) if kind == "autoaugment_cutout" else None
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The augmented batch (same shape, dtype and device)."""
        if self.kind == "none":
            return x
        mean, std = self.mean.to(x.device, x.dtype), self.std.to(x.device, x.dtype)
        pixels = crop_flip(x * std + mean, pad=max(1, x.shape[-1] // 8))
        if self.policy is not None:
            as_uint8 = (pixels * 255).round().clamp(0, 255).to(torch.uint8)
            # one policy draw per image (a v2 transform draws once per call)
            as_uint8 = torch.stack([self.policy(img) for img in as_uint8])
            pixels = as_uint8.to(x.dtype) / 255
        out = (pixels - mean) / std
        if self.kind in ("cutout", "autoaugment_cutout"):
            out = cutout(out, self.cutout_size)
        return out


def to_resolution(x: torch.Tensor, size: int, bicubic: bool, train: bool) -> torch.Tensor:
    """``x`` at the network's input ``size``.

    ``bicubic``: NSGANetV2's CIFAR retraining, which upsamples its 32-px batches on the fly
    with bicubic interpolation (training and test alike); otherwise `resize_batch` (training:
    resize; evaluation: resize to size/0.875 and centre-crop), as candidate evaluation does.
    """
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if bicubic:
        return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return resize_batch(x, size, train=train)
