"""Weight-saliency proxies (Abdelfattah et al. 2021, as in NASLib's ``measures/``).

Each is a sum over the weights of every ``nn.Conv2d`` / ``nn.Linear`` (biases and BN excluded),
with the cross-entropy loss of one minibatch where a loss is used. Higher is better for all.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nasx.metric.proxies.base import (
    ZeroCostMetric,
    prunable_layers,
    sum_over_layers,
    weight_grad,
)


def _backward_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Cross-entropy of the batch, back-propagated (nothing to do without any parameters)."""
    net.zero_grad()
    loss = F.cross_entropy(net(x), y)
    if loss.requires_grad:
        loss.backward()


def strip_batchnorm(net: nn.Module) -> nn.Module:
    """Replace every BN layer by ``nn.Identity``, in place (NASLib ``get_prunable_copy(bn=False)``).

    The NASLib copy is rebuilt without BN and loads the weights; removing the layers is the same.
    """
    for module in list(net.modules()):
        for child_name, child in module.named_children():
            if isinstance(child, _BatchNorm):
                setattr(module, child_name, nn.Identity())
    return net


class SynflowMetric(ZeroCostMetric):
    """``synflow``: ``sum |theta * dR/dtheta|`` with ``R = sum(f(1))`` of the linearised net.

    As NASLib (``synflow.py``, registered with ``bn=False``): on a copy without BN layers, every
    state tensor is replaced by its absolute value, the net runs in float64 on one all-ones
    input and the sum of the output is back-propagated. The scored network is left untouched
    (NASLib restores the signs; here the copy is dropped). The data batch is unused.
    """

    name = "synflow"

    def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        lin = strip_batchnorm(copy.deepcopy(net)).double().train()
        with torch.no_grad():
            for t in lin.state_dict().values():
                if t.is_floating_point():
                    t.abs_()
        lin.zero_grad()
        ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
        out = lin(ones)
        if out.requires_grad:
            out.sum().backward()
        return sum_over_layers(lin, lambda layer: (layer.weight * weight_grad(layer)).abs())


class SnipMetric(ZeroCostMetric):
    """``snip``: ``sum |theta * dL/dtheta|``.

    NASLib takes the gradient of the loss w.r.t. a weight mask at 1 (``snip.py``), which equals
    ``theta * dL/dtheta``; it is computed directly here.
    """

    name = "snip"

    def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        _backward_loss(net, x, y)
        return sum_over_layers(net, lambda layer: (layer.weight * weight_grad(layer)).abs())


class GradNormMetric(ZeroCostMetric):
    """``grad_norm``: ``sum_layers ||dL/dW_l||_2`` (one L2 norm per weight tensor, summed)."""

    name = "grad_norm"

    def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        _backward_loss(net, x, y)
        return sum_over_layers(net, lambda layer: weight_grad(layer).norm())


class GraspMetric(ZeroCostMetric):
    """``grasp``: ``sum(-theta * H g)``, ``g = dL/dtheta`` and ``H`` the Hessian of ``L``.

    NASLib's ``grasp.py`` (T=1, one iteration): ``z = sum(g.detach() * dL/dtheta)`` with the
    second gradient taken with ``create_graph``, then ``dz/dtheta = H g``. NASLib negates the
    GraSP paper's saliency so that higher is better; so does this class. A network whose
    weights get no gradient scores 0.
    """

    name = "grasp"

    def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        weights = [layer.weight for layer in prunable_layers(net)]
        if not weights:
            return 0.0
        net.zero_grad()
        loss = F.cross_entropy(net(x), y)
        if not loss.requires_grad:
            return 0.0
        grad_w = torch.autograd.grad(loss, weights, allow_unused=True)
        loss = F.cross_entropy(net(x), y)
        grad_f = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
        z: torch.Tensor | None = None
        for gw, gf in zip(grad_w, grad_f, strict=True):
            if gw is not None and gf is not None:
                term = (gw.detach() * gf).sum()
                z = term if z is None else z + term
        if z is None or not z.requires_grad:
            return 0.0
        z.backward()
        return sum_over_layers(net, lambda layer: -layer.weight.detach() * weight_grad(layer))


class FisherMetric(ZeroCostMetric):
    """``fisher``: per output channel ``k`` of each layer, ``0.5 * mean_n (sum_s a * dL/da)^2``.

    ``a`` is the layer's output (activation before BN), summed over spatial positions ``s``.
    As NASLib's ``fisher.py`` (channel mode), each channel's absolute value is broadcast to the
    channel's weights before the final sum, so it counts ``fan_in = W[k].numel()`` times.
    """

    name = "fisher"

    def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        per_layer: dict[nn.Module, torch.Tensor] = {}
        handles = []

        def forward_hook(layer: nn.Module, inp: object, out: torch.Tensor) -> None:
            if not out.requires_grad:
                return
            act = out.detach().clone()  # a later in-place op must not change it

            def grad_hook(grad: torch.Tensor) -> None:
                g = grad.detach()
                g_nk = (act * g).sum(tuple(range(2, act.dim()))) if act.dim() > 2 else act * g
                del_k = g_nk.pow(2).mean(0).mul(0.5)
                per_layer[layer] = per_layer[layer] + del_k if layer in per_layer else del_k

            out.register_hook(grad_hook)

        for layer in prunable_layers(net):
            handles.append(layer.register_forward_hook(forward_hook))
        try:
            _backward_loss(net, x, y)
        finally:
            for h in handles:
                h.remove()
        total = 0.0
        for layer in prunable_layers(net):
            if layer in per_layer:
                fan_in = layer.weight[0].numel()
                total += float(per_layer[layer].abs().double().sum()) * fan_in
        return total


class L2NormMetric(ZeroCostMetric):
    """``l2_norm``: ``sum_layers ||W_l||_2`` (Frobenius norm per weight tensor); no data used."""

    name = "l2_norm"

    def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        return sum_over_layers(net, lambda layer: layer.weight.norm())
