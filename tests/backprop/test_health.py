"""Training health (backprop/health.py): each figure equals what this test computes itself,
replaying the epochs with its own forward and backward passes (eq. 2, 8, 9) at the parameters
of every mini-batch, and from the parameters before and after each epoch; measuring it changes
no bit of training."""

from __future__ import annotations

import numpy as np
import pytest

from backprop import Trainer, TrainSpec, datasets, health
from backprop.results import Diverged

SIGMA = {
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float)),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.01 * z), lambda z: np.where(z > 0, 1, 0.01)),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
}
LARGEST_SLOPE = {"sigmoid": 0.25, "tanh": 1.0}


def _spec(layers, activation, **changes) -> TrainSpec:
    body = {
        "network": {"layers": layers, "activation": activation, "output_activation": "softmax"},
        "loss": "cross_entropy", "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 3, "batch_size": 32, "shuffle": False, "validation_split": 0.0, "seed": 2,
    }  # fmt: skip
    return TrainSpec.model_validate(body | changes)


def _passes(W, b, x, y, activation):
    """z^l and a^l for l = 1..L (softmax output), then δ^L = a^L − y (cross-entropy with
    softmax, eq. 9) and δ^l = (δ^{l+1} W^{l+1}) ⊙ σ'(z^l) (eq. 8): per sample, unscaled."""
    sigma, slope = SIGMA[activation]
    zs, a = [], x
    for l, (Wl, bl) in enumerate(zip(W, b, strict=True)):
        z = a @ Wl.T + bl
        zs.append(z)
        if l < len(W) - 1:
            a = sigma(z)
        else:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            a = e / e.sum(axis=1, keepdims=True)
    deltas = [a - y]
    for l in range(len(W) - 2, -1, -1):
        deltas.insert(0, (deltas[0] @ W[l + 1]) * slope(zs[l]))
    return zs, deltas


def _replay(spec: TrainSpec, x, y):
    """Per epoch: units alive (any row with a > 0), rows saturated per unit, the last batch's
    mean and max |δ^l|, and θ before and after; the engine only steps the parameters."""
    ref = Trainer(spec, x, y, health=False)
    net, X, Y, activation = ref.network, ref._x, ref._y, spec.network.activation
    epochs = []
    for epoch in range(1, spec.epochs + 1):
        hidden = net.sizes[1:-1]
        alive = [np.zeros(n, bool) for n in hidden]
        saturated = [np.zeros(n) for n in hidden]
        before = net.theta.copy()
        for start, stop, ws in ref._batches:
            zs, deltas = _passes(net.weights, net.biases, X[start:stop], Y[start:stop], activation)
            for l in range(len(hidden)):
                a = SIGMA[activation][0](zs[l])
                alive[l] |= (a > 0).any(axis=0)
                if activation in LARGEST_SLOPE:
                    slope = SIGMA[activation][1](zs[l])
                    saturated[l] += (slope < 0.01 * LARGEST_SLOPE[activation]).sum(axis=0)
            net.forward(X[start:stop], ws)
            net.backward(X[start:stop], Y[start:stop], ws, ref.loss)
            ref.optimizer.step(net.theta, net.grad, ref.learning_rate(epoch))
        epochs.append({
            "dead": [int((~a).sum()) for a in alive],
            "saturated": [int((s >= 0.99 * len(X)).sum()) for s in saturated],
            "delta_mean": [float(np.abs(d).mean()) for d in deltas],
            "delta_max": [float(np.abs(d).max()) for d in deltas],
            "before": net.layout.split(before), "after": net.layout.split(net.theta.copy()),
        })  # fmt: skip
    return epochs


def _ratios(before, after):
    return [np.linalg.norm(a - b) / np.linalg.norm(b) if np.linalg.norm(b) else np.nan
            for b, a in zip(before, after, strict=True)]  # fmt: skip


def test_dead_relu_units_of_an_uncentred_fixture_equal_a_replay(uncentred):
    """784-128-64-10, ReLU, xavier, Adam, batch 32 in order: most of layer 1 dies during epoch
    1 (measured: 73 %, at learning rate 1e-2; at 1e-3 none of it dies in three epochs), and
    every epoch's dead count is the replay's."""
    spec = _spec([784, 128, 64, 10], "relu", epochs=2)
    got = list(Trainer(spec, *uncentred).epochs())
    want = _replay(spec, *uncentred)
    for result, replayed in zip(got, want, strict=True):
        counts = [round(f * n) for f, n in zip(result.dead_fraction[:2], (128, 64), strict=True)]
        assert counts == replayed["dead"], result.epoch
        assert np.isnan(result.dead_fraction[2])  # the output layer
        assert np.isnan(result.saturated_fraction).all()
    assert got[0].dead_fraction[0] < 0.5 < got[1].dead_fraction[0]  # died during epoch 1


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "tanh"])
def test_every_figure_equals_the_replay(activation):
    rng = np.random.default_rng(3)
    # Uncentred inputs and a large step: units die or saturate within three epochs.
    x, y = rng.uniform(0, 10, (301, 6)), rng.integers(0, 3, 301)  # a partial last batch
    spec = _spec([6, 12, 8, 3], activation, optimizer={"name": "adam", "learning_rate": 0.3})
    got = list(Trainer(spec, x, y).epochs())
    for result, replayed in zip(got, _replay(spec, x, y), strict=True):
        W0, b0 = replayed["before"]
        W1, b1 = replayed["after"]
        np.testing.assert_allclose(result.update_ratio_weights, _ratios(W0, W1), rtol=1e-12)
        np.testing.assert_allclose(result.update_ratio_biases, _ratios(b0, b1), rtol=1e-12)
        np.testing.assert_allclose(result.delta_mean, replayed["delta_mean"], rtol=1e-10)
        np.testing.assert_allclose(result.delta_max, replayed["delta_max"], rtol=1e-10)
        figure = "saturated" if activation in LARGEST_SLOPE else "dead"
        fractions = getattr(result, f"{figure}_fraction")
        counts = [round(f * n) for f, n in zip(fractions[:2], (12, 8), strict=True)]
        assert counts == replayed[figure], (result.epoch, figure)
        assert result.nonfinite == 0.0
    assert np.isnan(got[0].update_ratio_biases).all()  # b = 0 before epoch 1: no ratio
    assert any(getattr(r, f"{figure}_fraction")[0] > 0 for r in got), "a case with none"


@pytest.mark.parametrize(
    ("activation", "changes"),
    [
        ("sigmoid", {"shuffle": True}),  # data permuted in one gather per epoch
        ("relu", {"shuffle": True, "dtype": "float32"}),
        ("tanh", {"batch_size": 7, "validation_split": 0.2}),
    ],
)
def test_measuring_health_changes_no_bit_of_training(activation, changes, monkeypatch):
    moons = datasets.load("moons", seed=0, n=300)
    spec = _spec([2, 16, 16, 2], activation, **changes)
    bare = Trainer(spec, moons.x, moons.y, health=False)
    plain = [r.loss for r in bare.epochs()]
    whole = list(Trainer(spec, moons.x, moons.y).epochs())
    monkeypatch.setattr(health, "RING_BYTES", 1)  # a ring of one batch: counted per batch
    ringed = Trainer(spec, moons.x, moons.y)
    small = list(ringed.epochs())
    assert ringed.network.theta.tobytes() == bare.network.theta.tobytes()
    assert [r.loss for r in whole] == [r.loss for r in small] == plain
    for name in health.EpochHealth.__slots__:  # counted per ring or once: the same figures
        np.testing.assert_array_equal([getattr(r, name) for r in whole],
                                      [getattr(r, name) for r in small], err_msg=name)  # fmt: skip
    first = next(Trainer(spec, moons.x, moons.y, health=False).epochs())
    assert all(getattr(first, name) is None for name in health.EpochHealth.__slots__)


def test_a_non_finite_parameter_is_flagged_the_epoch_it_appears():
    """A learning rate of 1e300 sends θ to ±inf in epoch 1's update while epoch 1's loss
    (from its forward pass, before the update) is finite; epoch 2's loss is not."""
    xor = datasets.load("xor")
    spec = TrainSpec.model_validate({
        "network": {"layers": [2, 4, 1], "activation": "relu"}, "epochs": 3, "seed": 3,
        "optimizer": {"name": "sgd", "learning_rate": 1e300}, "dtype": "float32",
    })  # fmt: skip
    trainer = Trainer(spec, xor.x, xor.y)
    first = next(trainer.epochs())
    assert np.isfinite(first.loss) and first.nonfinite == 1.0
    assert not np.isfinite(trainer.network.theta).all()
    with pytest.raises(Diverged, match="epoch 2"):
        next(trainer.epochs())
    big = spec.model_copy(update={"optimizer": spec.optimizer.model_copy(
        update={"learning_rate": 1e30})})  # fmt: skip
    huge = next(Trainer(big, xor.x, xor.y).epochs())  # θ near 1e28: finite, squares are not
    assert huge.nonfinite == 0.0 and np.isfinite(huge.update_ratio_weights).all()
