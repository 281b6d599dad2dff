"""Update rules θ ← θ − α·(step), applied in place to the flat parameter array θ.

Each optimizer owns its state arrays (the same size as θ) and a scratch buffer, so a step
allocates nothing. `state()` / `load_state()` move that state in and out of a checkpoint.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import numpy as np

from backprop import spec
from backprop.spec import OptimizerConfig

# The spec's configuration of one kind of optimizer. Covariant: the rule only reads it.
Config = TypeVar("Config", bound=OptimizerConfig, covariant=True)


class Optimizer(Generic[Config]):
    """Base: a scratch buffer and a step counter t (number of updates made so far)."""

    slots: tuple[str, ...] = ()  # state arrays, each annotated as an attribute by its rule

    def __init__(self, cfg: Config, size: int, dtype: np.dtype) -> None:
        self.cfg = cfg
        self.t = 0
        self._s = np.zeros(size, dtype)
        for slot in self.slots:
            setattr(self, slot, np.zeros(size, dtype))

    def step(self, theta: np.ndarray, g: np.ndarray, lr: float) -> None:
        """One update of θ given the gradient g = ∂C/∂θ and the learning rate α."""
        self.t += 1
        self._update(theta, g, lr, self._s)

    def _update(self, theta: np.ndarray, g: np.ndarray, lr: float, s: np.ndarray) -> None:
        raise NotImplementedError

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """(arrays, JSON-safe values) that `load_state` accepts."""
        return {slot: getattr(self, slot).copy() for slot in self.slots}, {"t": self.t}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, int]) -> None:
        for slot in self.slots:
            getattr(self, slot)[...] = arrays[slot]
        self.t = int(meta["t"])


class Sgd(Optimizer[spec.Sgd]):
    """θ ← θ − α g: eq. (11) for every w^l_kj and eq. (15) for every b^l_k."""

    def _update(self, theta: np.ndarray, g: np.ndarray, lr: float, s: np.ndarray) -> None:
        np.multiply(g, lr, out=s)
        theta -= s


class Momentum(Optimizer[spec.Momentum]):
    """v ← μ v − α g;  θ ← θ + v   (Polyak, 1964)."""

    slots = ("velocity",)
    velocity: np.ndarray

    def _update(self, theta: np.ndarray, g: np.ndarray, lr: float, s: np.ndarray) -> None:
        v = self.velocity
        v *= self.cfg.momentum
        np.multiply(g, lr, out=s)
        v -= s
        theta += v


class Nesterov(Optimizer[spec.Nesterov]):
    """v ← μ v − α g;  θ ← θ + μ v − α g: Nesterov's look-ahead step as reformulated by
    Sutskever et al. (2013) and Bengio et al. (2013), so the gradient is taken at θ itself."""

    slots = ("velocity",)
    velocity: np.ndarray

    def _update(self, theta: np.ndarray, g: np.ndarray, lr: float, s: np.ndarray) -> None:
        v, mu = self.velocity, self.cfg.momentum
        v *= mu
        np.multiply(g, lr, out=s)
        v -= s
        theta -= s
        np.multiply(v, mu, out=s)
        theta += s


class Adagrad(Optimizer[spec.Adagrad]):
    """G ← G + g²;  θ ← θ − α g / (√G + ε)   (Duchi, Hazan and Singer, 2011)."""

    slots = ("sum_sq",)
    sum_sq: np.ndarray

    def _update(self, theta: np.ndarray, g: np.ndarray, lr: float, s: np.ndarray) -> None:
        np.multiply(g, g, out=s)
        self.sum_sq += s
        np.sqrt(self.sum_sq, out=s)
        s += self.cfg.eps
        np.divide(g, s, out=s)
        s *= lr
        theta -= s


class RmsProp(Optimizer[spec.RmsProp]):
    """E ← ρ E + (1 − ρ) g²;  θ ← θ − α g / (√E + ε)   (Hinton, lecture 6e, 2012)."""

    slots = ("mean_sq",)
    mean_sq: np.ndarray

    def _update(self, theta: np.ndarray, g: np.ndarray, lr: float, s: np.ndarray) -> None:
        E, rho = self.mean_sq, self.cfg.rho
        E *= rho
        np.multiply(g, g, out=s)
        s *= 1.0 - rho
        E += s
        np.sqrt(E, out=s)
        s += self.cfg.eps
        np.divide(g, s, out=s)
        s *= lr
        theta -= s


class Adam(Optimizer[spec.Adam]):
    """Kingma and Ba (2015), Algorithm 1:
    m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  m̂ = m/(1−β₁ᵗ);  v̂ = v/(1−β₂ᵗ);
    θ ← θ − α m̂ / (√v̂ + ε)."""

    slots = ("m", "v")
    m: np.ndarray
    v: np.ndarray

    def _update(self, theta: np.ndarray, g: np.ndarray, lr: float, s: np.ndarray) -> None:
        b1, b2, t = self.cfg.beta1, self.cfg.beta2, self.t
        self.m *= b1
        np.multiply(g, 1.0 - b1, out=s)
        self.m += s
        self.v *= b2
        np.multiply(g, g, out=s)
        s *= 1.0 - b2
        self.v += s
        np.sqrt(self.v, out=s)
        s *= 1.0 / np.sqrt(1.0 - b2**t)  # √v̂
        s += self.cfg.eps
        np.divide(self.m, s, out=s)
        s *= lr / (1.0 - b1**t)  # α m̂ / (√v̂ + ε)
        theta -= s


def optimizer(cfg: OptimizerConfig, size: int, dtype: np.dtype) -> Optimizer[OptimizerConfig]:
    """The optimizer a TrainSpec's `optimizer` describes, for `size` parameters."""
    match cfg:
        case spec.Sgd():
            return Sgd(cfg, size, dtype)
        case spec.Momentum():
            return Momentum(cfg, size, dtype)
        case spec.Nesterov():
            return Nesterov(cfg, size, dtype)
        case spec.Adagrad():
            return Adagrad(cfg, size, dtype)
        case spec.RmsProp():
            return RmsProp(cfg, size, dtype)
        case spec.Adam():
            return Adam(cfg, size, dtype)
