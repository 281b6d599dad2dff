"""Two steps of each optimizer against its textbook formula, written out independently."""

import numpy as np
import pytest

from backprop import spec
from backprop.optimizers import optimizer

RNG = np.random.default_rng(7)
THETA0 = RNG.normal(size=6)
GRADS = [RNG.normal(size=6), RNG.normal(size=6)]
LR = 0.05


def _run(cfg):
    opt = optimizer(cfg, THETA0.size, np.dtype("float64"))
    theta = THETA0.copy()
    for g in GRADS:
        opt.step(theta, g, LR)
    return theta, opt


def _sgd():
    theta = THETA0.copy()
    for g in GRADS:
        theta = theta - LR * g  # eq. (11), (15)
    return theta


def _momentum(mu, nesterov):
    theta, v = THETA0.copy(), np.zeros(6)
    for g in GRADS:
        v = mu * v - LR * g
        theta = theta + (mu * v - LR * g if nesterov else v)
    return theta


def _adagrad(eps):
    theta, G = THETA0.copy(), np.zeros(6)
    for g in GRADS:
        G = G + g**2
        theta = theta - LR * g / (np.sqrt(G) + eps)
    return theta


def _rmsprop(rho, eps):
    theta, E = THETA0.copy(), np.zeros(6)
    for g in GRADS:
        E = rho * E + (1 - rho) * g**2
        theta = theta - LR * g / (np.sqrt(E) + eps)
    return theta


def _adam(b1, b2, eps):
    theta, m, v = THETA0.copy(), np.zeros(6), np.zeros(6)
    for t, g in enumerate(GRADS, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        theta = theta - LR * m_hat / (np.sqrt(v_hat) + eps)
    return theta


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        (spec.Sgd(), _sgd()),
        (spec.Momentum(momentum=0.8), _momentum(0.8, nesterov=False)),
        (spec.Nesterov(momentum=0.8), _momentum(0.8, nesterov=True)),
        (spec.Adagrad(eps=1e-3), _adagrad(1e-3)),
        (spec.RmsProp(rho=0.7, eps=1e-3), _rmsprop(0.7, 1e-3)),
        (spec.Adam(beta1=0.8, beta2=0.9, eps=1e-3), _adam(0.8, 0.9, 1e-3)),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_two_steps_follow_the_formula(cfg, expected):
    theta, _ = _run(cfg)
    np.testing.assert_allclose(theta, expected, rtol=1e-13, atol=1e-15)
    assert not np.allclose(theta, THETA0)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_state_round_trip_continues_identically(name):
    cfg = spec.TrainSpec.model_validate(
        {"network": {"layers": [1, 1]}, "optimizer": {"name": name}}
    ).optimizer
    straight, _ = _run(cfg)
    opt = optimizer(cfg, THETA0.size, np.dtype("float64"))
    theta = THETA0.copy()
    opt.step(theta, GRADS[0], LR)
    arrays, meta = opt.state()
    resumed = optimizer(cfg, THETA0.size, np.dtype("float64"))
    resumed.load_state(arrays, meta)
    resumed.step(theta, GRADS[1], LR)
    assert theta.tobytes() == straight.tobytes()
