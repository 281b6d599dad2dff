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

    def count_correct(self, a: np.ndarray, y: np.ndarray) -> float:
        """How many of the rows are classified right (fractional for several binary outputs)."""
        raise NotImplementedError


class Mse(Loss):
    """The seed's quadratic cost: C_x = ½‖y − a^L‖², so ∂C_x/∂a^L = a^L − y and
    δ^L = (a^L − y) ⊙ σ'(z^L), which is a^L − y for an identity output."""

    name = "mse"

    def value(self, z, a, y, scratch):
        np.subtract(a, y, out=scratch)
        return 0.5 * float(np.vdot(scratch, scratch))

    def output_delta(self, z, a, y, delta, scratch, sigma):
        np.subtract(a, y, out=delta)
        cost = 0.5 * float(np.vdot(delta, delta))
        sigma.scale_by_derivative(a, delta, scratch)
        return cost

    def count_correct(self, a, y):
        raise TypeError("accuracy is defined for classification losses only")


class BinaryCrossEntropy(Loss):
    """C_x = −Σ_k [y_k ln a_k + (1 − y_k) ln(1 − a_k)] with a = σ(z), computed as
    Σ_k [ln(1 + e^{z_k}) − y_k z_k]; with a sigmoid output δ^L = a^L − y."""

    name = "binary_cross_entropy"

    def value(self, z, a, y, scratch):
        np.logaddexp(0.0, z, out=scratch)
        return float(scratch.sum()) - float(np.vdot(y, z))

    def output_delta(self, z, a, y, delta, scratch, sigma):
        np.subtract(a, y, out=delta)
        return self.value(z, a, y, scratch)

    def count_correct(self, a, y):
        return np.count_nonzero((a > 0.5) == (y > 0.5)) / a.shape[1]


class CrossEntropy(Loss):
    """C_x = −Σ_k y_k ln softmax(z)_k = logsumexp(z) − y·z for rows of y summing to 1;
    with a softmax output δ^L = a^L − y."""

    name = "cross_entropy"

    def value(self, z, a, y, scratch):
        m = z.max(axis=1, keepdims=True)
        np.subtract(z, m, out=scratch)
        np.exp(scratch, out=scratch)
        lse = np.log(scratch.sum(axis=1)) + m[:, 0]
        return float(lse.sum()) - float(np.vdot(y, z))

    def output_delta(self, z, a, y, delta, scratch, sigma):
        np.subtract(a, y, out=delta)
        return self.value(z, a, y, scratch)

    def count_correct(self, a, y):
        return np.count_nonzero(a.argmax(axis=1) == y.argmax(axis=1))


def loss(name: str) -> Loss:
    """The loss called `name` in a TrainSpec."""
    kinds = {"mse": Mse, "binary_cross_entropy": BinaryCrossEntropy, "cross_entropy": CrossEntropy}
    return kinds[name]()
