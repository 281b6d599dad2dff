"""Cost functions C and the output error signal δ^L = ∂C/∂z^L of eq. (9).

Each loss returns the cost *summed* over the rows of a mini-batch; the caller divides by the
number of samples. For the canonical pairs (identity + mse, sigmoid + binary cross-entropy,
softmax + cross-entropy) ∂C/∂a^L ⊙ σ'(z^L) simplifies to a^L − y and that fused form is used.
Cross-entropies are computed from the logits z^L, so they stay finite where log a^L would not.
"""

from __future__ import annotations

import numpy as np

from backprop.activations import Activation


class Loss:
    name: str = ""

    def value(self, z: np.ndarray, a: np.ndarray, y: np.ndarray, scratch: np.ndarray) -> float:
        """Σ over rows of the per-sample cost C_x, given logits z = z^L and outputs a = a^L."""
        raise NotImplementedError

    def output_delta(
        self,
        z: np.ndarray,
        a: np.ndarray,
        y: np.ndarray,
        delta: np.ndarray,
        scratch: np.ndarray,
        sigma: Activation,
    ) -> float:
        """delta ← δ^L per sample, shape (B, n_L) (eq. 9); returns the summed cost."""
        raise NotImplementedError

    def decide(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The classification a^L stands for, per row: what `truth(y)` is for the targets."""
        raise TypeError("accuracy is defined for classification losses only")

    def truth(self, y: np.ndarray) -> np.ndarray:
        """The class of each target row, comparable element-wise with `decide`."""
        raise TypeError("accuracy is defined for classification losses only")


class Mse(Loss):
    """The seed's quadratic cost: C_x = ½‖y − a^L‖², so ∂C_x/∂a^L = a^L − y and
    δ^L = (a^L − y) ⊙ σ'(z^L), which is a^L − y for an identity output."""

    name = "mse"

    def value(self, z: np.ndarray, a: np.ndarray, y: np.ndarray, scratch: np.ndarray) -> float:
        np.subtract(a, y, out=scratch)
        return 0.5 * float(np.vdot(scratch, scratch))

    def output_delta(
        self,
        z: np.ndarray,
        a: np.ndarray,
        y: np.ndarray,
        delta: np.ndarray,
        scratch: np.ndarray,
        sigma: Activation,
    ) -> float:
        np.subtract(a, y, out=delta)
        cost = 0.5 * float(np.vdot(delta, delta))
        sigma.scale_by_derivative(a, delta, scratch)
        return cost


class BinaryCrossEntropy(Loss):
    """C_x = −Σ_k [y_k ln a_k + (1 − y_k) ln(1 − a_k)] with a = σ(z), computed as
    Σ_k [ln(1 + e^{z_k}) − y_k z_k]; with a sigmoid output δ^L = a^L − y."""

    name = "binary_cross_entropy"

    def value(self, z: np.ndarray, a: np.ndarray, y: np.ndarray, scratch: np.ndarray) -> float:
        np.logaddexp(0.0, z, out=scratch)
        return float(scratch.sum()) - float(np.vdot(y, z))

    def output_delta(
        self,
        z: np.ndarray,
        a: np.ndarray,
        y: np.ndarray,
        delta: np.ndarray,
        scratch: np.ndarray,
        sigma: Activation,
    ) -> float:
        np.subtract(a, y, out=delta)
        return self.value(z, a, y, scratch)

    def decide(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        decided: np.ndarray = np.greater(a, 0.5, out=out)  # numpy's stubs type a ufunc call as Any
        return decided

    def truth(self, y: np.ndarray) -> np.ndarray:
        return y > 0.5


class CrossEntropy(Loss):
    """C_x = −Σ_k y_k ln softmax(z)_k = logsumexp(z) − y·z for rows of y summing to 1;
    with a softmax output δ^L = a^L − y.

    The softmax has already shifted every row of z so that its maximum is 0 (see
    `activations.Softmax`), hence logsumexp(z) = ln Σ e^{z} = −ln max_k a_k, which is exact
    and finite: max_k a_k ≥ 1/n_L.
    """

    name = "cross_entropy"

    def value(self, z: np.ndarray, a: np.ndarray, y: np.ndarray, scratch: np.ndarray) -> float:
        return -float(np.log(a.max(axis=1)).sum()) - float(np.vdot(y, z))

    def output_delta(
        self,
        z: np.ndarray,
        a: np.ndarray,
        y: np.ndarray,
        delta: np.ndarray,
        scratch: np.ndarray,
        sigma: Activation,
    ) -> float:
        np.subtract(a, y, out=delta)
        return self.value(z, a, y, scratch)

    def decide(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return np.argmax(a, axis=1, out=out)

    def truth(self, y: np.ndarray) -> np.ndarray:
        classes: np.ndarray = np.argmax(y, axis=1)  # numpy's stubs: Any (1-D y gives a scalar)
        return classes


def loss(name: str) -> Loss:
    """The loss called `name` in a TrainSpec."""
    kinds = {"mse": Mse, "binary_cross_entropy": BinaryCrossEntropy, "cross_entropy": CrossEntropy}
    return kinds[name]()
