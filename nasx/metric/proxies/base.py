"""Shared machinery of the training-free (zero-cost) proxies: the network, the batch, the sum.

The proxies follow NASLib's ``naslib/predictors/utils/pruners/measures`` (Abdelfattah et al.
2021, "Zero-Cost Proxies for Lightweight NAS"): per-layer arrays are taken over the weights of
every ``nn.Conv2d`` and ``nn.Linear`` (``get_layer_metric_array``) and summed into one number
(``sum_arr``); every score is "higher is better".
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

from nasx.metric.base import Metric, MetricContext
from nasx.search_space.base import Architecture

INITS = ("fresh", "inherited")


def prunable_layers(net: nn.Module) -> Iterator[nn.Conv2d | nn.Linear]:
    """The layers NASLib scores: every ``nn.Conv2d`` and ``nn.Linear``, in module order."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            yield m


def sum_over_layers(net: nn.Module, fn: Callable[[nn.Conv2d | nn.Linear], torch.Tensor]) -> float:
    """``sum_l sum(fn(layer_l))`` over `prunable_layers` (0.0 for a network without any)."""
    total = 0.0
    for layer in prunable_layers(net):
        total += float(fn(layer).detach().double().sum())
    return total


def weight_grad(layer: nn.Conv2d | nn.Linear) -> torch.Tensor:
    """``layer.weight.grad``, zeros where the layer got no gradient (NASLib's fallback)."""
    g = layer.weight.grad
    return torch.zeros_like(layer.weight) if g is None else g


def forward_with_hooks(
    net: nn.Module,
    x: torch.Tensor,
    modules: Iterable[nn.Module],
    hook: Callable[..., None],
    pre: bool = False,
) -> None:
    """One no-grad forward pass of ``x`` with ``hook`` on each of ``modules``, removed after.

    ``pre`` registers it as a forward pre-hook ``hook(module, inputs)``; otherwise as a forward
    hook ``hook(module, inputs, output)``. The activation-based proxies read their features
    this way.
    """
    handles = [
        m.register_forward_pre_hook(hook) if pre else m.register_forward_hook(hook) for m in modules
    ]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()


def first_images(loader: torch.utils.data.DataLoader, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images and labels the loader yields (fewer if it holds fewer)."""
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    seen = 0
    for x, y in loader:
        xs.append(x)
        ys.append(torch.as_tensor(y))
        seen += len(x)
        if seen >= n:
            break
    if not xs:
        raise ValueError("the training loader yielded no images")
    return torch.cat(xs)[:n], torch.cat(ys)[:n]


class ZeroCostMetric(Metric):
    """Base class of the training-free proxies: score one minibatch on one network.

    Two seeds are drawn from the generator (data, then initialisation), so a score is fixed by
    the run seed and the architecture. The network is put in train mode, as NASLib's
    ``get_prunable_copy`` does, and moved to ``ctx.device``; subclasses implement `_score`.

    Args:
        batch_size: images of the one minibatch, taken from ``ctx.data.train_loader(seed)``.
        init: ``fresh`` scores ``ctx.space.build_search_network(arch)`` initialised under a
            seed drawn from the generator (the proxies' intended use, no supernet needed);
            ``inherited``
            scores ``ctx.supernet.extract(arch)`` and needs a trained supernet.
    """

    name = "zero_cost"
    higher_is_better = True
    needs_supernet = False
    needs_valid = False  # one training minibatch

    def __init__(self, batch_size: int = 64, init: str = "fresh") -> None:
        if batch_size < 1:
            raise ValueError(f"metric.batch_size must be >= 1, got {batch_size}")
        if init not in INITS:
            raise ValueError(f"metric.init must be 'fresh' or 'inherited', got {init!r}")
        self.batch_size, self.init = batch_size, init
        # the pipeline loads the trained supernet only for metrics that ask for it
        self.needs_supernet = init == "inherited"

    def network(self, arch: Architecture, ctx: MetricContext, seed: int) -> nn.Module:
        """The network to score (see ``init``), in train mode on ``ctx.device``."""
        if self.init == "inherited":
            if ctx.supernet is None:
                raise ValueError(
                    f"metric {self.name} with init='inherited' needs a trained supernet, but "
                    "the context holds none: use init='fresh' or train/load a supernet"
                )
            net = ctx.supernet.extract(arch)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = ctx.space.build_search_network(arch)
        return net.to(ctx.device).train()

    def _compute(
        self, arch: Architecture, ctx: MetricContext, generator: torch.Generator
    ) -> dict[str, float]:
        seeds = torch.randint(0, 2**31 - 1, (2,), generator=generator)
        data_seed, init_seed = int(seeds[0]), int(seeds[1])
        # the global CPU RNG (drawn by the DataLoader and any dropout) is seeded and restored
        with torch.random.fork_rng(devices=[]):
            net = self.network(arch, ctx, init_seed)
            x, y = first_images(ctx.data.train_loader(data_seed), self.batch_size)
            score = self._score(net, x.to(ctx.device), y.to(ctx.device))
        return {self.name: float(score)}

    @abstractmethod
    def _score(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        """The proxy of ``net`` (in train mode) on the batch ``(x, y)``."""
