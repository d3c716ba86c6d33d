"""A user metric: subclass `Metric`, give it a name and a direction, implement `_compute`."""

from __future__ import annotations

import torch

from nasx.metric import Metric, MetricContext
from nasx.search_space import Architecture


class LossGradientMetric(Metric):
    """Norm of the loss gradient of the inherited weights on one training batch.

    A small gradient means the supernet's weights already sit near a minimum for this path.
    """

    name = "loss_gradient"
    higher_is_better = False

    def __init__(self, batches: int = 1) -> None:
        if batches < 1:
            raise ValueError("metric.batches must be >= 1")
        self.batches = batches

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        net = ctx.supernet.extract(arch).eval()
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        total = 0.0
        for k, (x, y) in enumerate(ctx.data.train_loader(seed)):
            if k >= self.batches:
                break
            net.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x.to(ctx.device)), y.to(ctx.device))
            loss.backward()
            grads = [p.grad.reshape(-1) for p in net.parameters() if p.grad is not None]
            total += float(torch.cat(grads).norm()) if grads else 0.0
        return {self.name: total / self.batches}
