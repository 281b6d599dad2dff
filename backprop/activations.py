"""Activation functions σ of eq. (2): the value, and the local derivative σ'(z) of eq. (8)–(9).

Every derivative is computed from the stored activation a = σ(z) rather than from z, so the
forward pass keeps only one array per layer. All functions work in place on (B, n) arrays.
"""

from __future__ import annotations

import numpy as np


class Activation:
    """σ applied element-wise; `derivative` multiplies `delta` by σ'(z) given a = σ(z)."""

    name: str = ""

    def forward(self, z: np.ndarray, out: np.ndarray) -> None:
        """out ← σ(z); `out` may be `z` itself."""
        raise NotImplementedError

    def scale_by_derivative(self, a: np.ndarray, delta: np.ndarray, scratch: np.ndarray) -> None:
        """delta ← delta ⊙ σ'(z), with σ'(z) recovered from a = σ(z) (eq. 8, 9)."""
        raise NotImplementedError


class Sigmoid(Activation):
    """σ(z) = 1 / (1 + e^−z) = ½·tanh(z/2) + ½, which never overflows; σ' = a(1 − a)."""

    name = "sigmoid"

    def forward(self, z: np.ndarray, out: np.ndarray) -> None:
        np.multiply(z, 0.5, out=out)
        np.tanh(out, out=out)
        out *= 0.5
        out += 0.5

    def scale_by_derivative(self, a: np.ndarray, delta: np.ndarray, scratch: np.ndarray) -> None:
        np.subtract(1.0, a, out=scratch)
        scratch *= a
        delta *= scratch


class Tanh(Activation):
    """σ(z) = tanh z; σ' = 1 − a²."""

    name = "tanh"

    def forward(self, z: np.ndarray, out: np.ndarray) -> None:
        np.tanh(z, out=out)

    def scale_by_derivative(self, a: np.ndarray, delta: np.ndarray, scratch: np.ndarray) -> None:
        np.multiply(a, a, out=scratch)
        np.subtract(1.0, scratch, out=scratch)
        delta *= scratch


class Relu(Activation):
    """σ(z) = max(z, 0); σ' = 1 where a > 0, else 0 (0 at the kink, as is usual)."""

    name = "relu"

    def forward(self, z: np.ndarray, out: np.ndarray) -> None:
        np.maximum(z, 0.0, out=out)

    def scale_by_derivative(self, a: np.ndarray, delta: np.ndarray, scratch: np.ndarray) -> None:
        np.greater(a, 0.0, out=scratch)
        delta *= scratch


class LeakyRelu(Activation):
    """σ(z) = z for z > 0, slope·z otherwise; σ' = 1 or slope (a and z share their sign)."""

    name = "leaky_relu"

    def __init__(self, slope: float = 0.01) -> None:
        self.slope = slope

    def forward(self, z: np.ndarray, out: np.ndarray) -> None:
        # max(z, slope·z) equals leaky_relu for 0 < slope < 1.
        np.maximum(z, self.slope * z, out=out)

    def scale_by_derivative(self, a: np.ndarray, delta: np.ndarray, scratch: np.ndarray) -> None:
        np.greater(a, 0.0, out=scratch)
        scratch *= 1.0 - self.slope
        scratch += self.slope
        delta *= scratch


class Identity(Activation):
    """σ(z) = z; σ' = 1."""

    name = "identity"

    def forward(self, z: np.ndarray, out: np.ndarray) -> None:
        if out is not z:
            out[...] = z

    def scale_by_derivative(self, a: np.ndarray, delta: np.ndarray, scratch: np.ndarray) -> None:
        pass


class Softmax(Activation):
    """a_k = e^{z_k} / Σ_m e^{z_m} over each row. Its Jacobian is not diagonal; the engine only
    pairs it with cross-entropy, whose fused output delta is a − y (DESIGN §3).

    `forward` shifts each row of z in place by its maximum first. That changes neither the
    softmax nor the cross-entropy, keeps e^z from overflowing, and leaves max_k z_k = 0, so
    the cross-entropy can read ln Σ_m e^{z_m} = −ln max_k a_k off the output.
    """

    name = "softmax"

    def forward(self, z: np.ndarray, out: np.ndarray) -> None:
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=out)
        out /= out.sum(axis=1, keepdims=True)

    def scale_by_derivative(self, a: np.ndarray, delta: np.ndarray, scratch: np.ndarray) -> None:
        raise TypeError("softmax has no element-wise derivative; pair it with cross_entropy")


def activation(name: str, leaky_slope: float = 0.01) -> Activation:
    """The activation called `name` in a TrainSpec."""
    if name == "leaky_relu":
        return LeakyRelu(leaky_slope)
    kinds = {
        "sigmoid": Sigmoid,
        "tanh": Tanh,
        "relu": Relu,
        "identity": Identity,
        "softmax": Softmax,
    }
    return kinds[name]()
