"""Analytic gradients (eq. 8–10, 14) against central finite differences, float64."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop import activations
from backprop.gradcheck import max_relative_error
from backprop.losses import loss
from backprop.network import Network

HIDDEN = ["sigmoid", "tanh", "relu", "leaky_relu", "identity"]
# Every (output activation, loss) pair a TrainSpec allows.
HEADS = [
    ("sigmoid", "mse"),
    ("identity", "mse"),
    ("tanh", "mse"),
    ("sigmoid", "binary_cross_entropy"),
    ("softmax", "cross_entropy"),
]


def _problem(hidden, output, loss_name, sizes=(3, 5, 4, 3), batch=7, seed=0):
    rng = np.random.default_rng(seed)
    net = Network(sizes, hidden, output)
    # uniform init draws non-zero biases too, so no ReLU sits exactly on its kink at z = 0.
    net.initialize(rng, "uniform")
    x = rng.normal(size=(batch, sizes[0]))
    if loss_name == "cross_entropy":
        y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch)]
    else:
        y = rng.uniform(size=(batch, sizes[-1]))
    return net, x, y


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize(("output", "loss_name"), HEADS)
@pytest.mark.parametrize("l2", [0.0, 0.7])
def test_every_activation_and_loss_pair(hidden, output, loss_name, l2):
    net, x, y = _problem(hidden, output, loss_name)
    assert max_relative_error(net, x, y, loss(loss_name), l2=l2) < 1e-6


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    batch=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
    hidden=st.sampled_from(["sigmoid", "tanh"]),
)
def test_any_architecture(sizes, batch, seed, hidden):
    net, x, y = _problem(hidden, "sigmoid", "mse", tuple(sizes), batch, seed)
    assert max_relative_error(net, x, y, loss("mse")) < 1e-6


def test_a_wrong_derivative_is_caught(monkeypatch):
    """The check itself can fail: σ' = a instead of a(1 − a) must be flagged."""

    def wrong(self, a, delta, scratch):
        delta *= a

    monkeypatch.setattr(activations.Sigmoid, "scale_by_derivative", wrong)
    net, x, y = _problem("sigmoid", "identity", "mse")
    assert max_relative_error(net, x, y, loss("mse")) > 1e-2
