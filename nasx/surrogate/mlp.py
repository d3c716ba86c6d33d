"""Multi-layer perceptron regressor (NSGANetV2 ``mlp``), trained full-batch on the CPU."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from nasx.surrogate.base import Surrogate


class _Dropout(nn.Module):
    """`torch.nn.Dropout` drawing its masks from an explicit generator (no global RNG)."""

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        self.p, self.generator = p, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep / (1.0 - self.p)


def _build_net(
    n_features: int, n_hidden: int, n_layers: int, dropout: float, generator: torch.Generator
) -> nn.Sequential:
    """NSGANetV2's ``Net``: stem, ``n_layers`` hidden blocks, dropout, linear regressor."""
    layers: list[nn.Module] = [nn.Linear(n_features, n_hidden), nn.ReLU()]
    for _ in range(n_layers):
        layers += [nn.Linear(n_hidden, n_hidden), nn.ReLU()]
    layers += [_Dropout(dropout, generator), nn.Linear(n_hidden, 1)]
    net = nn.Sequential(*layers)
    with torch.no_grad():  # NSGANetV2 ``Net.init_weights``: U(+-1/sqrt(fan_in)), zero bias
        for m in net:
            if isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.in_features)
                m.weight.uniform_(-bound, bound, generator=generator)
                m.bias.zero_()
    return net


class MLPSurrogate(Surrogate):
    """NSGANetV2's MLP predictor.

    Net: ``Linear(n -> 300) + ReLU``, ``n_layers`` x ``[Linear(300 -> 300) + ReLU]``,
    ``Dropout(0.2)``, ``Linear(300 -> 1)``. Training: a random 80/20 train/validation split,
    Adam (lr 8e-4), SmoothL1 loss, ``epochs`` full-batch steps with cosine annealing to 0; the
    weights with the lowest validation loss seen are kept (``best_epoch``, ``best_val_loss``;
    ``val_losses`` holds every epoch's loss, ``val_index`` the validation rows).

    Differences from the reference, all documented choices:

    * with ``standardize_x`` every gene is centred and scaled to unit variance (a constant
      gene keeps scale 1). NSGANetV2 feeds the raw non-negative integer genes; on those the
      ReLU net memorises the training rows within tens of epochs and ranks unseen ones badly
      (out-of-sample Kendall tau ~0.45 against ~0.88 standardised on a smooth 8-gene test
      function with 120 samples).
    * with ``standardize_y`` the targets are standardised before training and predictions
      mapped back. NSGANetV2 trains on raw top-1 errors in percent; SmoothL1's unit threshold
      and the zero-initialised output bias then depend on the target's units, which nasx does
      not fix (fractions, percents, errors or accuracies). Standardising makes the fit
      independent of them.
    * everything random (init, split, dropout masks) comes from one `torch.Generator` seeded
      with ``seed``; training runs on the CPU in float32.

    Args:
        n_hidden: width of the hidden layers.
        n_layers: hidden 300 -> 300 blocks after the stem.
        dropout: dropout before the output layer.
        lr: Adam learning rate.
        epochs: full-batch training steps (cosine schedule length).
        train_fraction: share of the rows used for training; the rest validates. A fraction
            that leaves no validation row keeps the last epoch's weights.
        standardize_x: train on standardised genes (see above).
        standardize_y: train on standardised targets (see above).
        num_threads: torch intra-op threads while fitting (restored after); the net is too
            small to gain from more, and extra threads stall on a busy machine. 0 leaves
            torch's setting alone.
        seed: seeds the generator.
    """

    name = "mlp"

    def __init__(
        self,
        n_hidden: int = 300,
        n_layers: int = 2,
        dropout: float = 0.2,
        lr: float = 8e-4,
        epochs: int = 2000,
        train_fraction: float = 0.8,
        standardize_x: bool = True,
        standardize_y: bool = True,
        num_threads: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        if n_hidden < 1 or n_layers < 0 or epochs < 1 or lr <= 0:
            raise ValueError("mlp needs n_hidden >= 1, n_layers >= 0, epochs >= 1 and lr > 0")
        if not 0 <= dropout < 1 or not 0 < train_fraction <= 1:
            raise ValueError("mlp needs 0 <= dropout < 1 and 0 < train_fraction <= 1")
        self.n_hidden, self.n_layers, self.dropout = int(n_hidden), int(n_layers), float(dropout)
        self.lr, self.epochs = float(lr), int(epochs)
        self.train_fraction = float(train_fraction)
        self.standardize_x, self.standardize_y = bool(standardize_x), bool(standardize_y)
        if num_threads < 0:
            raise ValueError(f"mlp num_threads must be >= 0, got {num_threads}")
        self.num_threads = int(num_threads)
        self.net: nn.Sequential | None = None
        self.best_epoch = -1
        self.best_val_loss = math.inf
        self.val_losses: list[float] = []
        self.val_index = np.zeros(0, dtype=int)
        self._y_mean, self._y_scale = 0.0, 1.0
        self._x_mean, self._x_scale = np.zeros(0), np.ones(0)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        previous = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            self._train(X, y)
        finally:
            torch.set_num_threads(previous)

    def _train(self, X: np.ndarray, y: np.ndarray) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        self._y_mean, self._y_scale = 0.0, 1.0
        if self.standardize_y:
            std = float(y.std())
            self._y_mean, self._y_scale = float(y.mean()), std if std > 0 else 1.0
        self._x_mean, self._x_scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        if self.standardize_x:
            std = X.std(axis=0)
            self._x_mean, self._x_scale = X.mean(axis=0), np.where(std > 0, std, 1.0)
        inputs = torch.as_tensor((X - self._x_mean) / self._x_scale, dtype=torch.float32)
        target = torch.as_tensor((y - self._y_mean) / self._y_scale, dtype=torch.float32)[:, None]
        n = len(y)
        perm = torch.randperm(n, generator=gen)
        n_train = max(1, int(n * self.train_fraction))
        trn, vld = perm[:n_train], perm[n_train:]
        self.val_index = vld.numpy().copy()
        self.val_losses = []

        net = _build_net(X.shape[1], self.n_hidden, self.n_layers, self.dropout, gen)
        optimizer = torch.optim.Adam(net.parameters(), lr=self.lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, self.epochs, eta_min=0)
        criterion = nn.SmoothL1Loss()
        best_state = copy.deepcopy(net.state_dict())
        self.best_epoch, self.best_val_loss = self.epochs - 1, math.inf
        for epoch in range(self.epochs):
            net.train()
            optimizer.zero_grad()
            loss = criterion(net(inputs[trn]), target[trn])
            loss.backward()
            optimizer.step()
            scheduler.step()
            if len(vld) == 0:
                continue
            net.eval()
            with torch.no_grad():
                val_loss = float(criterion(net(inputs[vld]), target[vld]))
            self.val_losses.append(val_loss)
            if val_loss < self.best_val_loss:
                self.best_val_loss, self.best_epoch = val_loss, epoch
                best_state = copy.deepcopy(net.state_dict())
        if len(vld) == 0:
            best_state = net.state_dict()
        net.load_state_dict(best_state)
        net.eval()
        self.net = net

    def _predict(self, X: np.ndarray) -> np.ndarray:
        assert self.net is not None
        with torch.no_grad():
            Z = (X - self._x_mean) / self._x_scale
            out = self.net(torch.as_tensor(Z, dtype=torch.float32))[:, 0].numpy()
        return out.astype(float) * self._y_scale + self._y_mean
