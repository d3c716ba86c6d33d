"""Cubic radial-basis-function interpolant with a linear tail (NSGANetV2 ``rbf``)."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import RBFInterpolator

from nasx.surrogate.base import Surrogate, average_duplicates


class RBFSurrogate(Surrogate):
    """pySOT's ``RBFInterpolant`` (cubic kernel r**3, linear tail) on scipy's `RBFInterpolator`.

    The fit solves ``[[Phi + smoothing*I, P], [P^T, 0]] [c; lambda] = [y; 0]`` exactly as pySOT
    0.2.3 does with its regulariser ``eta`` (default 1e-6), so ``smoothing`` is pySOT's ``eta``.

    Two guards make the fit never singular on raw integer encodings:

    * duplicate rows (padding genes make many vectors decode alike) are collapsed into one row
      with the mean target (`average_duplicates`); the interpolant passes through that mean;
    * the rows are expressed in coordinates of their own affine hull (centred, projected on
      the right singular vectors with non-zero singular values). When the training rows span
      the whole space this is a rotation: distances and the linear tail, hence the
      interpolant, are unchanged. When they do not (a gene never varied, fewer rows than
      genes), the linear tail would be rank deficient; in hull coordinates it is not, and a
      query point is measured by its projection on the hull (directions never seen in
      training carry no information).

    Args:
        smoothing: diagonal regulariser of the kernel matrix (pySOT ``eta``); 0 interpolates.
        seed: unused (the fit is deterministic); kept for the common constructor.
    """

    name = "rbf"

    def __init__(self, smoothing: float = 1e-6, seed: int = 0) -> None:
        super().__init__(seed)
        if smoothing < 0:
            raise ValueError(f"rbf smoothing must be >= 0, got {smoothing}")
        self.smoothing = float(smoothing)
        self._mean = np.zeros(0)
        self._basis = np.zeros((0, 0))
        self._constant: float | None = None
        self._model: RBFInterpolator | None = None

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        Xu, yu = average_duplicates(X, y)
        self._mean = Xu.mean(axis=0)
        centred = Xu - self._mean
        _, sv, vt = np.linalg.svd(centred, full_matrices=False)
        tol = sv[0] * max(centred.shape) * np.finfo(float).eps if sv.size else 0.0
        self._basis = vt[sv > tol].T
        self._model, self._constant = None, None
        if self._basis.shape[1] == 0:  # all rows identical
            self._constant = float(yu.mean())
            return
        self._model = RBFInterpolator(
            centred @ self._basis, yu, kernel="cubic", degree=1, smoothing=self.smoothing
        )

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self._model is None:
            return np.full(X.shape[0], self._constant)
        return np.asarray(self._model((X - self._mean) @ self._basis))
