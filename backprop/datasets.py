"""Built-in data sets, deterministic by name and seed.

`load(name, seed=…)` returns a Dataset: x of shape (n, features), and y as integer class labels
of shape (n,) for classification sets or targets of shape (n, 1) for the regression set (sine).
Class labels fit cross_entropy directly, and binary labels fit a single sigmoid output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from backprop._iris import ROWS as _IRIS_ROWS

Xy = tuple[np.ndarray, np.ndarray]  # what a generator returns: inputs x and labels or targets y


@dataclass(frozen=True)
class Dataset:
    name: str
    x: np.ndarray
    y: np.ndarray
    n_classes: int | None  # None for regression

    @property
    def n_outputs(self) -> int:
        """Output units a network needs: one per class (or one for two classes), else y's width."""
        if self.n_classes is None:
            return int(self.y.shape[1])
        return 1 if self.n_classes == 2 else self.n_classes


def _truth_table(outputs: list[int]) -> Callable[..., Xy]:
    def make(rng: np.random.Generator) -> Xy:
        return np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), np.array(outputs)

    return make


def moons(rng: np.random.Generator, n: int = 200, noise: float = 0.1) -> Xy:
    """Two interleaving half circles, as scikit-learn's make_moons."""
    n_top = n // 2
    t_top, t_bottom = np.linspace(0, np.pi, n_top), np.linspace(0, np.pi, n - n_top)
    top = np.column_stack([np.cos(t_top), np.sin(t_top)])
    bottom = np.column_stack([1 - np.cos(t_bottom), 0.5 - np.sin(t_bottom)])
    x = np.vstack([top, bottom]) + rng.normal(0, noise, (n, 2))
    y = np.repeat([0, 1], [n_top, n - n_top])
    return _shuffled(rng, x, y)


def circles(rng: np.random.Generator, n: int = 200, noise: float = 0.05, factor: float = 0.5) -> Xy:
    """A small circle inside a large one, as scikit-learn's make_circles."""
    n_out = n // 2
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n - n_out, endpoint=False)
    outer = np.column_stack([np.cos(t_out), np.sin(t_out)])
    inner = factor * np.column_stack([np.cos(t_in), np.sin(t_in)])
    x = np.vstack([outer, inner]) + rng.normal(0, noise, (n, 2))
    y = np.repeat([0, 1], [n_out, n - n_out])
    return _shuffled(rng, x, y)


def spirals(rng: np.random.Generator, n: int = 300, classes: int = 3, noise: float = 0.2) -> Xy:
    """`classes` interleaved arms of an Archimedean spiral (CS231n's toy data)."""
    per = n // classes
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.0, 1.0, per)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, per) + rng.normal(0, noise, per)
        xs.append(np.column_stack([r * np.sin(t), r * np.cos(t)]))
        ys.append(np.full(per, c))
    return _shuffled(rng, np.vstack(xs), np.concatenate(ys))


def blobs(rng: np.random.Generator, n: int = 300, centers: int = 3, std: float = 1.0) -> Xy:
    """Isotropic Gaussian clusters in 2-D with centres drawn from U(−10, 10)²."""
    mu = rng.uniform(-10, 10, (centers, 2))
    y = np.arange(n) % centers
    x = mu[y] + rng.normal(0, std, (n, 2))
    return x, y


def sine(rng: np.random.Generator, n: int = 200, noise: float = 0.0) -> Xy:
    """Regression: y = sin x on x ∈ [−π, π], plus optional Gaussian noise."""
    x = np.sort(rng.uniform(-np.pi, np.pi, n))[:, None]
    return x, np.sin(x) + rng.normal(0, noise, x.shape) if noise else np.sin(x)


def iris(rng: np.random.Generator) -> Xy:
    """Fisher's iris: 150 samples, 4 features (cm), 3 classes."""
    table = np.array([row.split(",") for row in _IRIS_ROWS.split()], dtype=np.float64)
    return table[:, :4], table[:, 4].astype(np.int64)


def _shuffled(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> Xy:
    order = rng.permutation(len(y))
    return x[order], y[order]


_MAKERS: dict[str, tuple[Callable[..., Xy], int | None]] = {
    "xor": (_truth_table([0, 1, 1, 0]), 2),
    "and": (_truth_table([0, 0, 0, 1]), 2),
    "or": (_truth_table([0, 1, 1, 1]), 2),
    "moons": (moons, 2),
    "circles": (circles, 2),
    "spirals": (spirals, None),
    "blobs": (blobs, None),
    "sine": (sine, None),
    "iris": (iris, 3),
}
NAMES = tuple(_MAKERS)


def load(name: str, seed: int = 0, **options: float) -> Dataset:
    """The built-in data set `name`; `options` (n, noise, …) go to its generator."""
    if name not in _MAKERS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(NAMES)}")
    make, n_classes = _MAKERS[name]
    x, y = make(np.random.default_rng(seed), **options)
    if name in ("spirals", "blobs"):
        n_classes = int(y.max()) + 1
    return Dataset(name, x, y, n_classes)
