"""Architectures for a requirement from a trained NAG generator (``generate_archs.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from nasx.nag.gan import NAGGenerator
from nasx.nag.graph import GraphAdapter
from nasx.nag.labels import Condition
from nasx.search_space.base import Architecture


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Torch's global generators (CPU and CUDA) seeded with ``seed``, restored after."""
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        torch.manual_seed(seed)
        yield


def generate(
    generator: NAGGenerator,
    adapter: GraphAdapter,
    condition: str | Condition,
    n: int,
    seed: int,
    dropout: bool = False,
    unique: bool = False,
    batch_size: int = 256,
) -> list[Architecture]:
    """The valid architectures among ``n`` draws for ``condition``, in draw order.

    Each draw is a fresh z (as the reference's 100 noise vectors per class); its cells are
    decoded, pruned and given to `GraphAdapter.from_graphs`, and draws that are no
    architecture of the space are dropped, so the list holds at most ``n``. Duplicates are
    kept (the reference's lists keep them) unless ``unique``, which keeps first occurrences.
    The result depends only on the arguments and the generator's weights.

    Args:
        generator: a trained generator.
        adapter: the space's graph adapter.
        condition: ``high_acc``, ``high_acc+small_params``, ... or a `Condition`; it must
            name one class per objective the generator was trained on.
        n: number of draws.
        seed: seed of z, of the drawn types and edges, and of dropout when on.
        dropout: keep dropout on while generating, as the reference does (it never switches
            the generator to evaluation mode); ``False`` generates in evaluation mode.
        unique: drop repeated architectures.
        batch_size: draws per forward pass.
    """
    cond = Condition.parse(condition) if isinstance(condition, str) else condition
    row = cond.labels()
    classes = generator.n_label_classes
    if len(row) != len(classes) or any(not 0 <= c < k for c, k in zip(row, classes, strict=True)):
        raise ValueError(
            f"condition {str(cond)!r} does not fit a generator trained on {len(classes)} "
            f"objective(s) with {classes} classes"
        )
    device = next(generator.parameters()).device
    draws = torch.Generator().manual_seed(seed)
    was_training = generator.training
    generator.train(dropout)
    out: list[Architecture] = []
    try:
        with seeded_torch(seed):
            for start in range(0, n, batch_size):
                b = min(batch_size, n - start)
                z = torch.randn(b, generator.latent_dim, generator=draws).to(device)
                labels = torch.tensor([row] * b, dtype=torch.long, device=device)
                for cells in generator.sample_graphs(z, labels, draws):
                    arch = adapter.from_graphs(cells)
                    if arch is not None:
                        out.append(arch)
    finally:
        generator.train(was_training)
    if unique:
        out = list(dict.fromkeys(out))
    return out
