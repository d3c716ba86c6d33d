"""Corruption robustness of a trained network: errors on CIFAR-C and the mean corruption error.

FlatNAS (``AI-Tech-Research-Lab/Robustness: evaluate_cifar10c.py``, ``compute_mCE``) reports,
per corruption, the top-1 error (%) at each severity and their mean, the *unnormalised*
corruption error. Its summary ``mCE`` is therefore the plain mean over corruptions of those
means, unlike ImageNet-C's mCE (Hendrycks & Dietterich), which divides each corruption's summed
error by AlexNet's before averaging; CIFAR-C papers report the unnormalised mean, as here.

Differences from FlatNAS, on purpose:

* images are corrupted at their native 32x32 (the CIFAR-C protocol, so generated and official
  images agree) and then resized to the network's input size; FlatNAS resizes first and
  corrupts at the search resolution (128-224);
* the caller passes the normalisation; FlatNAS normalises with ImageNet statistics although
  its networks are trained with CIFAR's (pass the training statistics, e.g.
  ``(CIFAR10Data.mean, CIFAR10Data.std)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasx.ood.corruptions import CORRUPTIONS, SEVERITIES, CorruptionSource, _check


def to_network_input(
    images: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    image_size: int,
) -> torch.Tensor:
    """uint8 ``(N, H, W, C)`` images as normalised float ``(N, C, S, S)`` tensors.

    As the in-memory datasets prepare them (`nasx.data.base.TensorImageData`): scale to
    [0, 1], normalise per channel, then resize bilinearly (no corner alignment) to
    ``image_size`` when the side differs.
    """
    t = torch.as_tensor(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    t = (t - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    if t.shape[-2:] != (image_size, image_size):
        t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return t


def to_pixels(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalised float ``(N, C, H, W)`` images back to uint8 ``(N, H, W, C)`` pixels.

    Undoes `to_network_input`'s scaling and normalisation (no resize); for datasets kept in
    memory normalised, whose 8-bit pixels this recovers exactly.
    """
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    pixels = ((x.cpu() * s + m) * 255).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().numpy()


@torch.no_grad()
def top1_error(
    net: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    normalise: tuple[Sequence[float], Sequence[float]],
    image_size: int,
    device: torch.device,
    batch_size: int = 256,
) -> float:
    """Top-1 error in percent (``100 - acc1``, FlatNAS's ``top1``) of ``net`` in eval mode."""
    correct = 0
    targets = torch.as_tensor(np.asarray(labels)).long()
    for i in range(0, len(images), batch_size):
        x = to_network_input(images[i : i + batch_size], *normalise, image_size).to(device)
        pred = net(x).argmax(dim=1).cpu()
        correct += int((pred == targets[i : i + batch_size]).sum())
    return 100.0 * (1.0 - correct / len(images))


def corruption_accuracy(
    net: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    normalise: tuple[Sequence[float], Sequence[float]],
    image_size: int,
    device: str | torch.device | None = None,
    batch_size: int = 256,
    corruptions: Sequence[str] = CORRUPTIONS,
    severities: Sequence[int] = SEVERITIES,
    source: CorruptionSource | None = None,
    indices: np.ndarray | None = None,
) -> dict[str, Any]:
    """Errors of ``net`` on the clean and corrupted test images (FlatNAS's OOD evaluation).

    Args:
        net: the trained network; evaluated in eval mode (its mode is restored afterwards) on
            ``device``, where it must already be.
        images: the clean test images, uint8 ``(N, 32, 32, 3)`` (the first N of the test set
            in order when ``source`` reads the official files).
        labels: their labels ``(N,)``.
        normalise: per-channel ``(mean, std)`` of the network's training data.
        image_size: the network's input side; images are resized to it after corruption.
        device: where to run; ``None`` takes the device of the first parameter (CPU when
            the network has none).
        batch_size: images per forward pass.
        corruptions: names from `CORRUPTIONS` (default: all 15).
        severities: severities from 1-5 (default: all).
        source: official files or generation (default: generated, uncached, seed 0).
        indices: the images' positions in the test set, where the official files are read
            (default: the first N in order).

    Returns:
        A dict with ``clean_error``; ``errors`` (corruption -> severity -> error);
        ``mean_errors`` (corruption -> mean over severities, FlatNAS's per-corruption
        ``mean``); ``mce`` (mean of ``mean_errors``, unnormalised); ``sources`` (corruption ->
        ``"official"`` or ``"generated:imagecorruptions-imaug <version>"``); ``n_images``.
        Errors are top-1 errors in percent.
    """
    if not corruptions or not severities:
        raise ValueError("corruptions and severities must not be empty")
    for c in corruptions:
        for s in severities:
            _check(c, s)
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"got {len(images)} images and {len(labels)} labels")
    source = source if source is not None else CorruptionSource()
    if device is None:
        param = next(net.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    dev = torch.device(device)
    labels = np.asarray(labels).astype(np.int64)

    was_training = net.training
    net.eval()
    try:
        clean = top1_error(net, images, labels, normalise, image_size, dev, batch_size)
        errors: dict[str, dict[int, float]] = {}
        sources: dict[str, str] = {}
        for c in corruptions:
            errors[c] = {}
            for s in severities:
                ci = source.load(images, labels, c, s, indices)
                err = top1_error(net, ci.images, ci.labels, normalise, image_size, dev, batch_size)
                errors[c][s] = err
                sources[c] = ci.source
    finally:
        net.train(was_training)
    mean_errors = {c: float(np.mean(list(e.values()))) for c, e in errors.items()}
    return {
        "clean_error": clean,
        "errors": errors,
        "mean_errors": mean_errors,
        "mce": float(np.mean(list(mean_errors.values()))),
        "sources": sources,
        "n_images": len(images),
    }
