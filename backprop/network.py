"""Network: the parameters W^l, b^l, the forward pass (eq. 2) and the backward pass (eq. 8–10, 14).

Conventions (the seed's, DESIGN §3): layers 0..L, n_l neurons in layer l, W^l of shape
(n_l, n_{l-1}) with W^l[k, j] = w^l_kj, b^l of shape (n_l,). A mini-batch of B samples is
processed at once with one sample per row, so in code

    z^l = a^{l-1} (W^l)ᵀ + b^l          (B, n_l)          eq. (2), one row per sample

Internally every layer keeps Wt^l = (W^l)ᵀ of shape (n_{l-1}, n_l), C-contiguous, so the forward
pass multiplies by a plain array rather than a transposed view (the faster BLAS path); np.dot
is used rather than np.matmul for its lower per-call overhead on small matrices. All
weights and then all biases live in one flat array `theta`, so an optimizer updates every
parameter with a handful of calls; `grad` mirrors it. `weights` and `biases` present the seed's
convention as views.
"""

from __future__ import annotations

import numpy as np

from backprop.activations import Activation, activation
from backprop.layout import Layout
from backprop.losses import Loss


class Workspace:
    """Preallocated buffers for mini-batches of one size B: the gathered inputs x and targets y,
    a^l and δ^l of shape (B, n_l) for l = 1..L, the output logits z^L, one scratch array per
    layer for σ', and a row of B ones that sums δ^l over the batch as one BLAS call."""

    # Slots: the epoch loop reads these attributes tens of times per batch, and a copy (as
    # backprop/health.py makes one per batch) keeps slot access where a copied __dict__ would
    # lose CPython's specialised attribute lookup.
    __slots__ = ("a", "aT", "batch", "delta", "mean_scale", "ones", "scratch", "x", "xT", "y", "z")

    def __init__(self, sizes: tuple[int, ...], batch: int, dtype: np.dtype) -> None:
        self.batch = batch
        self.mean_scale = 1.0 / batch
        self.ones = np.ones(batch, dtype)
        self.x = np.empty((batch, sizes[0]), dtype)
        self.y = np.empty((batch, sizes[-1]), dtype)
        self.a = [np.empty((batch, n), dtype) for n in sizes[1:]]
        # Transposed views made once: creating views is a visible cost on small networks.
        self.xT = self.x.T
        self.aT = [a.T for a in self.a]
        self.delta = [np.empty((batch, n), dtype) for n in sizes[1:]]
        self.scratch = [np.empty((batch, n), dtype) for n in sizes[1:]]
        self.z = np.empty((batch, sizes[-1]), dtype)


class Network:
    """A fully connected network with `sizes` = (n_0, …, n_L)."""

    def __init__(
        self,
        sizes: list[int] | tuple[int, ...],
        activation_name: str = "sigmoid",
        output_activation: str = "sigmoid",
        dtype: str | np.dtype = "float64",
        leaky_slope: float = 0.01,
    ) -> None:
        self.sizes = tuple(int(n) for n in sizes)
        self.L = len(self.sizes) - 1
        self.dtype = np.dtype(dtype)
        self.hidden: Activation = activation(activation_name, leaky_slope)
        self.output: Activation = activation(output_activation, leaky_slope)
        self.layout = Layout(self.sizes)
        self.n_weights = self.layout.n_weights
        self.theta = np.zeros(self.layout.size, self.dtype)
        self.grad = np.zeros_like(self.theta)
        self.Wt, self.b = self.layout.transposed_views(self.theta)
        self.gWt, self.gb = self.layout.transposed_views(self.grad)
        self.W = [Wt.T for Wt in self.Wt]  # W^l in the seed's (n_l, n_{l-1}) view
        self._segments = self.layout.block_starts

    @property
    def weights(self) -> list[np.ndarray]:
        """W^l for l = 1..L, shape (n_l, n_{l-1}), [k, j] = w^l_kj (views: copy to keep)."""
        return list(self.W)

    @property
    def biases(self) -> list[np.ndarray]:
        """b^l for l = 1..L, shape (n_l,) (views: copy to keep)."""
        return list(self.b)

    @property
    def n_parameters(self) -> int:
        return self.theta.size

    def initialize(self, rng: np.random.Generator, scheme: str = "xavier") -> None:
        """Draw W^l from `rng` (in the seed's (n_l, n_{l-1}) order, whatever the layout).

        xavier: U(±√(6/(n_{l-1}+n_l))), b = 0 (Glorot and Bengio, 2010);
        he: N(0, 2/n_{l-1}), b = 0 (He et al., 2015);
        uniform: W and b from U(±1/√n_{l-1}) (LeCun; PyTorch's nn.Linear).
        """
        for l, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            if scheme == "xavier":
                limit = np.sqrt(6.0 / (n_in + n_out))
                W, b = rng.uniform(-limit, limit, (n_out, n_in)), np.zeros(n_out)
            elif scheme == "he":
                W, b = rng.normal(0.0, np.sqrt(2.0 / n_in), (n_out, n_in)), np.zeros(n_out)
            elif scheme == "uniform":
                limit = 1.0 / np.sqrt(n_in)
                W = rng.uniform(-limit, limit, (n_out, n_in))
                b = rng.uniform(-limit, limit, n_out)
            else:
                raise ValueError(f"unknown init scheme {scheme!r}; use xavier, he or uniform")
            self.Wt[l][...] = W.T
            self.b[l][...] = b

    def workspace(self, batch: int) -> Workspace:
        return Workspace(self.sizes, batch, self.dtype)

    def forward(self, x: np.ndarray, ws: Workspace) -> np.ndarray:
        """a^L for a mini-batch x of shape (B, n_0); keeps every a^l in `ws` for `backward`."""
        a, Wt, b, sigma = x, self.Wt, self.b, self.hidden
        for l in range(self.L - 1):
            z = ws.a[l]
            np.dot(a, Wt[l], out=z)  # z^l = a^{l-1} (W^l)ᵀ + b^l   (eq. 2)
            z += b[l]
            sigma.forward(z, z)  # a^l = σ(z^l), in place
            a = z
        np.dot(a, Wt[-1], out=ws.z)
        ws.z += b[-1]
        self.output.forward(ws.z, ws.a[-1])
        return ws.a[-1]

    def backward(self, x: np.ndarray, y: np.ndarray, ws: Workspace, loss: Loss) -> float:
        """Fill `grad` with the gradients of the mean cost over the batch; return the summed cost.

        δ^L from the loss (eq. 9), then δ^l = (δ^{l+1} W^{l+1}) ⊙ σ'(z^l) row-wise (eq. 8),
        ∂C/∂W^l = (δ^l)ᵀ a^{l-1} / B (eq. 10) and ∂C/∂b^l = Σ_rows δ^l / B (eq. 14). δ^L is
        scaled by 1/B once, which scales every δ^l below it and so averages every gradient.
        """
        deltas, aT, gWt, gb, W = ws.delta, ws.aT, self.gWt, self.gb, self.W
        cost = loss.output_delta(ws.z, ws.a[-1], y, deltas[-1], ws.scratch[-1], self.output)
        deltas[-1] *= ws.mean_scale
        for l in range(self.L - 1, 0, -1):
            delta = deltas[l]
            np.dot(aT[l - 1], delta, out=gWt[l])
            np.dot(ws.ones, delta, out=gb[l])  # Σ_rows δ^l, 4× faster than np.sum here
            np.dot(delta, W[l], out=deltas[l - 1])
            self.hidden.scale_by_derivative(ws.a[l - 1], deltas[l - 1], ws.scratch[l - 1])
        np.dot(ws.xT if x is ws.x else x.T, deltas[0], out=gWt[0])
        np.dot(ws.ones, deltas[0], out=gb[0])
        return cost

    def predict(self, x: np.ndarray) -> np.ndarray:
        """a^L for inputs x of shape (B, n_0), as a new array."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        return self.forward(x, self.workspace(x.shape[0])).copy()

    def gradient_norms(self) -> tuple[list[float], list[float]]:
        """‖∂C/∂W^l‖ and ‖∂C/∂b^l‖ (Frobenius, Euclidean) of the gradient in `grad`."""
        sq = np.add.reduceat(self.grad * self.grad, self._segments)
        norms = np.sqrt(sq).tolist()
        return norms[: self.L], norms[self.L :]
