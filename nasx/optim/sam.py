"""SAM / ASAM: sharpness-aware minimisation around a base optimiser (FlatNAS's optimiser).

Written here because no maintained package on PyPI provides it: the reference
implementation (davda54/sam, used by FlatNAS's ``train_utils.py``) is a single file meant to
be copied. This is the same algorithm in ~60 lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimisation (Foret et al. 2021); ``adaptive=True`` is ASAM (Kwon 2021).

    One update is two forward/backward passes on the same batch:

    1. `first_step`: climb to ``w + e(w)`` with ``e(w) = rho * T^2 g / ||T g||`` where ``T`` is
       ``|w|`` elementwise for ASAM and the identity for SAM;
    2. compute the gradient there, then `second_step`: return to ``w`` and apply the base
       optimiser with that gradient.

    Args:
        params: parameters (or parameter groups) to optimise.
        base_optimizer: the optimiser class applied at the perturbed point (e.g. SGD).
        rho: neighbourhood radius (FlatNAS: 2.0 with ``adaptive=True``; SAM papers: 0.05).
        adaptive: scale the neighbourhood by ``|w|`` (ASAM).
        **kwargs: arguments of ``base_optimizer`` (lr, momentum, weight_decay, ...).
    """

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type[torch.optim.Optimizer],
        rho: float = 0.05,
        adaptive: bool = False,
        **kwargs: Any,
    ) -> None:
        if rho < 0:
            raise ValueError(f"SAM rho must be >= 0, got {rho}")
        super().__init__(params, dict(rho=rho, adaptive=adaptive, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)

    @torch.no_grad()
    def first_step(self) -> None:
        """Move every parameter to the worst point of its neighbourhood (keeps ``w`` aside)."""
        norm = self._grad_norm()
        for group in self.param_groups:
            scale = group["rho"] / (norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e_w = (torch.pow(p, 2) if group["adaptive"] else 1.0) * p.grad * scale
                self.state[p]["old_p"] = p.detach().clone()
                p.add_(e_w)

    @torch.no_grad()
    def second_step(self) -> None:
        """Return to ``w`` and take the base optimiser's step with the perturbed gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if "old_p" in self.state[p]:
                    p.data = self.state[p].pop("old_p")
        self.base_optimizer.step()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Both steps; ``closure`` must run a full forward/backward pass (as in torch)."""
        if closure is None:
            raise ValueError("SAM.step needs a closure that recomputes the loss and gradients")
        self.first_step()
        with torch.enable_grad():
            loss = closure()
        self.second_step()
        return loss

    def _grad_norm(self) -> torch.Tensor:
        norms = [
            ((torch.abs(p) if group["adaptive"] else 1.0) * p.grad).norm(p=2)
            for group in self.param_groups
            for p in group["params"]
            if p.grad is not None
        ]
        if not norms:
            return torch.tensor(0.0)
        device = norms[0].device
        return torch.norm(torch.stack([n.to(device) for n in norms]), p=2)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore, keeping the base optimiser's groups shared with this one."""
        super().load_state_dict(state_dict)
        self.base_optimizer.param_groups = self.param_groups
