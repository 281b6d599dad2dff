"""Finite-difference check of the analytic gradients of backpropagation.

For every parameter θ_i (each w^l_kj and b^l_k), the central difference
(C(θ + h e_i) − C(θ − h e_i)) / 2h is compared with ∂C/∂θ_i from eq. (10) and (14).
"""

from __future__ import annotations

import numpy as np

from backprop.losses import Loss
from backprop.network import Network


def cost(net: Network, x: np.ndarray, y: np.ndarray, loss: Loss, l2: float = 0.0) -> float:
    """C = (1/B) Σ_x C_x + (λ/2B)·Σ‖W^l‖² over a batch of B samples (DESIGN §3)."""
    ws = net.workspace(x.shape[0])
    a_L = net.forward(x, ws)
    B: int = x.shape[0]
    w = net.theta[: net.n_weights]
    return loss.value(ws.z, a_L, y, ws.scratch[-1]) / B + l2 / (2 * B) * float(w @ w)


def analytic_gradient(
    net: Network, x: np.ndarray, y: np.ndarray, loss: Loss, l2: float = 0.0
) -> np.ndarray:
    """∂C/∂θ from one backward pass, in the flat layout of `net.theta`."""
    ws = net.workspace(x.shape[0])
    net.forward(x, ws)
    net.backward(x, y, ws, loss)
    grad = net.grad.copy()
    grad[: net.n_weights] += l2 / x.shape[0] * net.theta[: net.n_weights]
    return grad


def max_relative_error(
    net: Network, x: np.ndarray, y: np.ndarray, loss: Loss, l2: float = 0.0, h: float = 1e-5
) -> float:
    """max_i |g_i − ĝ_i| / max_i |g_i|: the worst error relative to the gradient's scale.

    Relative to the largest component rather than to each one, because a central difference
    carries an absolute rounding error of about ε·C/h, which would swamp components near zero
    (dead ReLUs, saturated sigmoids) that are analytically exact. h ≈ ε^{1/3} balances that
    rounding against the O(h²) truncation error. Float64 networks only.
    """
    if net.dtype != np.float64:
        raise ValueError("finite differences need float64 to be meaningful")
    x = np.ascontiguousarray(x, np.float64)
    y = np.ascontiguousarray(y, np.float64)
    g = analytic_gradient(net, x, y, loss, l2)
    numeric = np.empty_like(g)
    theta = net.theta
    for i in range(theta.size):
        kept = theta[i]
        theta[i] = kept + h
        up = cost(net, x, y, loss, l2)
        theta[i] = kept - h
        down = cost(net, x, y, loss, l2)
        theta[i] = kept
        numeric[i] = (up - down) / (2 * h)
    return float(np.max(np.abs(g - numeric)) / max(float(np.max(np.abs(g))), 1e-300))
