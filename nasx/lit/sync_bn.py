"""Batch norm synchronised across DDP processes on any device (the gloo backend on CPU included).

``torch.nn.SyncBatchNorm`` (Lightning's ``sync_batchnorm=True``) runs on GPUs only. Without
it, each process normalises its share of the batch with that share's statistics, so DDP over
N processes trains a different network than one process on the whole batch. `AllReduceBatchNorm`
is a Lightning ``LayerSync`` plugin (``trainer.plugins``) that makes every batch-norm layer
use the statistics of the global batch: two differentiable all-reduces (the sums, then the
squared deviations from the global mean) per layer and step, the gradient flowing back through
both, as ``SyncBatchNorm`` does on GPUs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch.plugins.layer_sync import LayerSync
from torch import nn


class _AllReduceSum(torch.autograd.Function):
    """Sum over every process; the gradient is summed the same way (each rank's loss uses it)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of ``x`` over every process of the default group."""
    out: torch.Tensor = _AllReduceSum.apply(x)
    return out


def _global_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of ``x`` over every process, and the count."""
    dims = [0, *range(2, x.dim())]
    n_local = torch.tensor([x.numel() // x.size(1)], dtype=x.dtype, device=x.device)
    sums = all_reduce(torch.cat([x.sum(dims), n_local]))
    n = sums[-1]
    mean = sums[:-1] / n
    shape = [1, -1, *([1] * (x.dim() - 2))]
    centred = x - mean.view(shape)
    var = all_reduce((centred * centred).sum(dims)) / n
    return mean, var, n


class _AllReduceMixin(nn.modules.batchnorm._BatchNorm):
    """Training-mode forward with global-batch statistics (eval and one process: unchanged)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (
            self.training
            and dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
        ):
            return super().forward(input)
        mean, var, n = _global_moments(input)
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            momentum = (
                1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            )
            assert self.running_mean is not None and self.running_var is not None
            with torch.no_grad():
                unbiased = var * (n / (n - 1).clamp(min=1))
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
        shape = [1, -1, *([1] * (input.dim() - 2))]
        out = (input - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


class _AllReduceBatchNorm1d(_AllReduceMixin, nn.BatchNorm1d):
    pass


class _AllReduceBatchNorm2d(_AllReduceMixin, nn.BatchNorm2d):
    pass


class _AllReduceBatchNorm3d(_AllReduceMixin, nn.BatchNorm3d):
    pass


_SYNCED: dict[type[nn.Module], type[nn.Module]] = {
    nn.BatchNorm1d: _AllReduceBatchNorm1d,
    nn.BatchNorm2d: _AllReduceBatchNorm2d,
    nn.BatchNorm3d: _AllReduceBatchNorm3d,
}
_PLAIN = {v: k for k, v in _SYNCED.items()}


class AllReduceBatchNorm(LayerSync):
    """Lightning plugin: batch-norm layers use the statistics of the global batch under DDP.

    ``apply`` switches every ``BatchNorm1d/2d/3d`` to a subclass with the synchronised forward
    (same parameters, buffers and state-dict keys); ``revert`` switches them back. With one
    process it changes nothing. Use it as ``trainer.plugins=[{_target_:
    nasx.lit.sync_bn.AllReduceBatchNorm}]``, not together with ``sync_batchnorm=true``.
    """

    def apply(self, model: Any) -> Any:
        """Switch every plain batch-norm layer of ``model`` to the synchronised one."""
        for module in model.modules():
            synced = _SYNCED.get(type(module))
            if synced is not None:
                module.__class__ = synced
        return model

    def revert(self, model: Any) -> Any:
        """Switch the synchronised layers back to plain batch norm."""
        for module in model.modules():
            plain = _PLAIN.get(type(module))
            if plain is not None:
                module.__class__ = plain
        return model


__all__ = ["AllReduceBatchNorm"]
