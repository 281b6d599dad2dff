"""A 2-2-1 sigmoid network and one full-batch SGD step on the quadratic cost, worked by hand.

The first case is the classic example of M. Mazur ("A step by step backpropagation example",
2015) reduced to its first output neuron; the literals below are the numbers printed there.
Neuron indices are 0-based as in the API: w^l_kj is W^l[k, j].
"""

from dataclasses import dataclass
from math import exp

import numpy as np
import pytest

from backprop.losses import loss
from backprop.network import Network
from backprop.optimizers import Sgd as SgdRule
from backprop.spec import Sgd


def sig(z):
    return 1.0 / (1.0 + exp(-z))


W1 = np.array([[0.15, 0.20], [0.25, 0.30]])
b1 = np.array([0.35, 0.35])
W2 = np.array([[0.40, 0.45]])
b2 = np.array([0.60])
ALPHA = 0.5


def _net():
    net = Network([2, 2, 1], "sigmoid", "sigmoid")
    for view, value in zip(net.weights + net.biases, [W1, W2, b1, b2], strict=True):
        view[...] = value  # views into θ, in the seed's convention
    return net


@dataclass
class Pass:
    """One forward and backward pass, in the seed's convention."""

    loss: float  # C, the mean over the batch
    delta: list[np.ndarray]  # δ^l per sample, shape (B, n_l) (eq. 8, 9)
    grad_weights: list[np.ndarray]  # ∂C/∂W^l, shape (n_l, n_{l-1}) (eq. 10)
    grad_biases: list[np.ndarray]  # ∂C/∂b^l (eq. 14)


def _step(net, x, y):
    """The engine's forward and backward pass, then one SGD update (eq. 11, 15)."""
    B = x.shape[0]
    ws = net.workspace(B)
    net.forward(x, ws)
    cost = net.backward(x, y, ws, loss("mse"))
    grad_weights, grad_biases = net.layout.split(net.grad.copy())
    # The engine scales δ^L by 1/B once, which averages every gradient: undo it per sample.
    bp = Pass(cost / B, [d * B for d in ws.delta], grad_weights, grad_biases)
    SgdRule(Sgd(learning_rate=ALPHA), net.n_parameters, net.dtype).step(net.theta, net.grad, ALPHA)
    return bp


def test_one_sample_matches_the_published_numbers():
    x, y = np.array([[0.05, 0.10]]), np.array([[0.01]])
    net = _net()
    bp = _step(net, x, y)

    z1 = [0.15 * 0.05 + 0.20 * 0.10 + 0.35, 0.25 * 0.05 + 0.30 * 0.10 + 0.35]  # eq. (2)
    assert z1 == pytest.approx([0.3775, 0.3925])
    a1 = [sig(z1[0]), sig(z1[1])]  # eq. (2): a = σ(z)
    assert a1 == pytest.approx([0.593269992, 0.596884378])
    z2 = 0.40 * a1[0] + 0.45 * a1[1] + 0.60  # eq. (2)
    assert z2 == pytest.approx(1.105905967)
    a2 = sig(z2)
    assert a2 == pytest.approx(0.75136507)
    # eq. (9): δ^2_0 = ∂C/∂a^2_0 · σ'(z^2_0) with C = ½(a − y)², σ' = a(1 − a)
    d2 = (a2 - 0.01) * a2 * (1 - a2)
    assert d2 == pytest.approx(0.138498562)
    # eq. (8): δ^1_k = (Σ_m δ^2_m w^2_mk) σ'(z^1_k)
    d1 = [d2 * 0.40 * a1[0] * (1 - a1[0]), d2 * 0.45 * a1[1] * (1 - a1[1])]
    # eq. (10): ∂C/∂w^2_0j = δ^2_0 a^1_j — Mazur's ∂E/∂w5 = 0.082167041
    gW2 = [d2 * a1[0], d2 * a1[1]]
    assert gW2[0] == pytest.approx(0.082167041)
    gW1 = [[d1[0] * 0.05, d1[0] * 0.10], [d1[1] * 0.05, d1[1] * 0.10]]  # eq. (10)

    assert bp.loss == pytest.approx(0.5 * (a2 - 0.01) ** 2, rel=1e-12)
    np.testing.assert_allclose(bp.delta[1], [[d2]], rtol=1e-12)
    np.testing.assert_allclose(bp.delta[0], [d1], rtol=1e-12)
    np.testing.assert_allclose(bp.grad_weights[1], [gW2], rtol=1e-12)
    np.testing.assert_allclose(bp.grad_weights[0], gW1, rtol=1e-12)
    np.testing.assert_allclose(bp.grad_biases[1], [d2], rtol=1e-12)  # eq. (14)
    np.testing.assert_allclose(bp.grad_biases[0], d1, rtol=1e-12)  # eq. (14)

    # eq. (11): w ← w − α δ a;  Mazur's w5⁺ = 0.35891648
    assert net.weights[1][0, 0] == pytest.approx(0.35891648)
    np.testing.assert_allclose(net.weights[1], [[0.40 - ALPHA * gW2[0], 0.45 - ALPHA * gW2[1]]])
    np.testing.assert_allclose(net.weights[0], W1 - ALPHA * np.array(gW1), rtol=1e-12)
    # eq. (15): b ← b − α δ
    np.testing.assert_allclose(net.biases[1], [0.60 - ALPHA * d2], rtol=1e-12)
    np.testing.assert_allclose(net.biases[0], b1 - ALPHA * np.array(d1), rtol=1e-12)


def test_two_samples_average_the_gradients():
    """Full batch of two: ∂C/∂W is the mean over samples of δ^l (a^{l-1})ᵀ."""
    X = [(0.05, 0.10), (1.0, 0.0)]
    Y = [0.01, 1.0]
    net = _net()
    bp = _step(net, np.array(X), np.array(Y)[:, None])

    gW1 = np.zeros((2, 2))
    gb1 = np.zeros(2)
    gW2 = np.zeros(2)
    gb2 = 0.0
    cost = 0.0
    for (x0, x1), y in zip(X, Y, strict=True):
        z1 = [W1[k, 0] * x0 + W1[k, 1] * x1 + b1[k] for k in range(2)]  # eq. (2)
        a1 = [sig(z) for z in z1]
        a2 = sig(W2[0, 0] * a1[0] + W2[0, 1] * a1[1] + b2[0])  # eq. (2)
        cost += 0.5 * (a2 - y) ** 2 / 2
        d2 = (a2 - y) * a2 * (1 - a2)  # eq. (9)
        d1 = [d2 * W2[0, k] * a1[k] * (1 - a1[k]) for k in range(2)]  # eq. (8)
        for k in range(2):
            gW2[k] += d2 * a1[k] / 2  # eq. (10), averaged over the 2 samples
            gb1[k] += d1[k] / 2  # eq. (14)
            gW1[k] += np.array([d1[k] * x0, d1[k] * x1]) / 2  # eq. (10)
        gb2 += d2 / 2  # eq. (14)

    assert bp.loss == pytest.approx(cost, rel=1e-12)
    np.testing.assert_allclose(bp.grad_weights[0], gW1, rtol=1e-12)
    np.testing.assert_allclose(bp.grad_weights[1], [gW2], rtol=1e-12)
    np.testing.assert_allclose(bp.grad_biases[0], gb1, rtol=1e-12)
    np.testing.assert_allclose(bp.grad_biases[1], [gb2], rtol=1e-12)
    np.testing.assert_allclose(net.weights[0], W1 - ALPHA * gW1, rtol=1e-12)  # eq. (11)
    np.testing.assert_allclose(net.weights[1], W2 - ALPHA * gW2, rtol=1e-12)  # eq. (11)
    np.testing.assert_allclose(net.biases[0], b1 - ALPHA * gb1, rtol=1e-12)  # eq. (15)
    np.testing.assert_allclose(net.biases[1], b2 - ALPHA * gb2, rtol=1e-12)  # eq. (15)
