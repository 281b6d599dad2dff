"""Checking training data against a TrainSpec and putting it in the engine's layout.

x has one sample per row, shape (n, n_0). y is (n, n_L); (n,) is accepted for one output unit;
for cross_entropy y may be integer class labels of shape (n,), turned into one-hot rows here.
Every problem raises a ValueError that says what was expected.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from backprop.spec import TrainSpec


def prepare(spec: TrainSpec, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) as C-contiguous arrays of the spec's dtype, shapes (n, n_0) and (n, n_L)."""
    n_in, n_out = spec.network.layers[0], spec.network.layers[-1]
    x = _numeric(x, "x")
    y = _numeric(y, "y")
    if x.ndim != 2 or x.shape[1] != n_in:
        raise ValueError(
            f"x must have shape (n_samples, {n_in}) to match network.layers[0] = {n_in}, "
            f"got shape {x.shape}"
        )
    n = x.shape[0]
    if n == 0:
        raise ValueError("x is empty: training needs at least one sample")
    if y.shape[:1] != (n,):
        raise ValueError(f"y must have one row per sample of x ({n}), got shape {y.shape}")
    if spec.loss == "cross_entropy" and y.ndim == 1:
        y = _one_hot(y, n_out)
    elif y.ndim == 1 and n_out == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[1] != n_out:
        expected = f"(n_samples, {n_out})"
        if spec.loss == "cross_entropy":
            expected += " or integer class labels of shape (n_samples,)"
        raise ValueError(
            f"y must have shape {expected} to match network.layers[-1] = {n_out}, "
            f"got shape {y.shape}"
        )
    if spec.loss != "mse" and (y.min() < 0 or y.max() > 1):
        raise ValueError(f"y holds targets outside [0, 1], which {spec.loss} cannot fit")
    if spec.loss == "cross_entropy" and not np.allclose(y.sum(axis=1), 1.0):
        raise ValueError("y rows must sum to 1 for cross_entropy (one-hot or class probabilities)")
    dtype = np.dtype(spec.dtype)
    return np.ascontiguousarray(x, dtype), np.ascontiguousarray(y, dtype)


def _numeric(values: npt.ArrayLike, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a rectangular array of numbers (rows of equal length): {exc}"
        ) from None
    if arr.size and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise ValueError(f"{name} holds a NaN or infinite value (first at index {bad})")
    return arr


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    if not np.array_equal(labels, np.round(labels)):
        raise ValueError("y as class labels must hold whole numbers")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(
            f"y class labels must lie in 0..{n_classes - 1} (network.layers[-1] = {n_classes}), "
            f"got labels from {int(labels.min())} to {int(labels.max())}"
        )
    Y = np.zeros((labels.size, n_classes))
    Y[np.arange(labels.size), labels.astype(np.intp)] = 1.0
    return Y


def split(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, validation): a seeded random `fraction` of the n rows held out."""
    if fraction == 0:
        return np.arange(n), np.arange(0)
    n_val = round(n * fraction)
    if n_val < 1 or n_val >= n:
        raise ValueError(
            f"validation_split = {fraction} of {n} samples leaves {n - n_val} to train on and "
            f"{n_val} to validate on; both need at least one"
        )
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
