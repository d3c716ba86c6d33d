"""BatchNorm recalibration of an extracted sub-network (GeNAS ``tester_*.py``)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import DataLoader


@torch.no_grad()
def recalibrate_bn(
    net: nn.Module,
    loader: DataLoader,
    images: int,
    momentum: float | None = 0.1,
    device: torch.device | None = None,
) -> nn.Module:
    """Reset every BN's running statistics and re-estimate them on training batches.

    As GeNAS: forward ``ceil(images / batch_size)`` batches of a fresh iterator in ``train()``
    mode (a loader with fewer batches is read again until that many have passed, so an EMA
    gets its updates on a small dataset); with ``momentum=0.1`` the statistics are an EMA
    from the reset values (the original), with ``momentum=None`` an exact cumulative average.
    Leaves ``net`` in evaluation mode.
    """
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = momentum
    net.train()
    batches = math.ceil(images / (loader.batch_size or 1))
    seen = 0
    while seen < batches:  # a loader shorter than asked is read again (tiny datasets)
        start = seen
        for x, _ in loader:
            if seen >= batches:
                break
            net(x.to(device) if device is not None else x)
            seen += 1
        if seen == start:
            break  # an empty loader
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    return net.eval()
