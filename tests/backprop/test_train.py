"""The Trainer: learning, determinism, bit-identical checkpoints, schedules and stopping."""

import json

import numpy as np
import pytest

from backprop import data, datasets, gradcheck, train
from backprop.spec import TrainSpec
from backprop.train import Diverged, Trainer

XOR = datasets.load("xor")
MOONS = datasets.load("moons", seed=0, n=300)


def _run(spec, x, y):
    trainer = Trainer(spec, x, y)
    return trainer, list(trainer.epochs())


def _moons_spec(**changes):
    body = {
        "network": {"layers": [2, 16, 16, 2], "activation": "tanh", "output_activation": "softmax"},
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 10,
        "batch_size": 32,
        "validation_split": 0.2,
        "l2": 0.01,
        "seed": 5,
    }
    return TrainSpec.model_validate(body | changes)


def test_xor_is_learned():
    spec = TrainSpec.model_validate(
        {"network": {"layers": [2, 4, 1]}, "optimizer": {"learning_rate": 2.0}, "epochs": 4000}
    )
    trainer, results = _run(spec, XOR.x, XOR.y)
    assert results[-1].loss < 0.01
    np.testing.assert_array_equal(trainer.network.predict(XOR.x).ravel() > 0.5, XOR.y == 1)
    assert [r.epoch for r in results] == list(range(1, 4001))
    assert results[-1].loss < results[0].loss


def test_moons_reach_95_percent_on_held_out_samples():
    _, results = _run(_moons_spec(epochs=200), MOONS.x, MOONS.y)
    assert results[-1].val_accuracy >= 0.95
    assert results[-1].accuracy >= 0.95


def test_same_spec_is_bit_identical():
    _, a = _run(_moons_spec(), MOONS.x, MOONS.y)
    _t, b = _run(_moons_spec(), MOONS.x, MOONS.y)
    assert [r.loss for r in a] == [r.loss for r in b]
    assert [r.val_loss for r in a] == [r.val_loss for r in b]
    _, c = _run(_moons_spec(seed=6), MOONS.x, MOONS.y)
    assert [r.loss for r in a] != [r.loss for r in c]


def _through_storage(state):
    """What a worker does: arrays to raw bytes, everything else to JSON, and back."""
    arrays = {
        k: np.frombuffer(v.tobytes(), v.dtype).reshape(v.shape) for k, v in state["arrays"].items()
    }
    return {"arrays": arrays, "meta": json.loads(json.dumps(state["meta"]))}


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_checkpoint_restore_is_bit_identical(optimizer, dtype):
    spec = _moons_spec(
        optimizer={"name": optimizer, "learning_rate": 0.01},
        dtype=dtype,
        lr_schedule={"name": "step", "step_size": 3, "gamma": 0.5},
        early_stopping={"patience": 50},
    )
    straight, results = _run(spec, MOONS.x, MOONS.y)

    first = Trainer(spec, MOONS.x, MOONS.y)
    head = [r for _, r in zip(range(4), first.epochs(), strict=False)]
    resumed = Trainer.restore(spec, MOONS.x, MOONS.y, _through_storage(first.state()))
    tail = list(resumed.epochs())

    assert [r.epoch for r in head + tail] == list(range(1, 11))
    for key in ("loss", "val_loss", "accuracy", "val_accuracy", "grad_norm_weights"):
        assert [getattr(r, key) for r in head + tail] == [getattr(r, key) for r in results]
    got = resumed.weights + resumed.biases
    want = straight.weights + straight.biases
    assert [g.tobytes() for g in got] == [w.tobytes() for w in want]


def test_restore_rejects_another_network():
    spec = _moons_spec()
    state = Trainer(spec, MOONS.x, MOONS.y).state()
    other = _moons_spec(network={"layers": [2, 8, 2], "output_activation": "softmax"})
    with pytest.raises(ValueError, match="checkpoint holds"):
        Trainer.restore(other, MOONS.x, MOONS.y, state)


def test_float32_tracks_float64():
    spec = _moons_spec(optimizer={"name": "sgd", "learning_rate": 0.1}, l2=0.0)
    t64, r64 = _run(spec, MOONS.x, MOONS.y)
    t32, r32 = _run(spec.model_copy(update={"dtype": "float32"}), MOONS.x, MOONS.y)
    assert t32.network.theta.dtype == np.float32
    np.testing.assert_allclose([r.loss for r in r32], [r.loss for r in r64], atol=1e-4)
    np.testing.assert_allclose(t32.network.theta, t64.network.theta, atol=1e-4)


def test_divergence_names_the_epoch():
    spec = TrainSpec.model_validate(
        {
            "network": {"layers": [1, 8, 1], "activation": "relu", "output_activation": "identity"},
            "optimizer": {"learning_rate": 50.0},
            "epochs": 100,
        }
    )
    x = np.linspace(-10, 10, 50)[:, None]
    with pytest.raises(Diverged, match=r"diverged at epoch \d+") as err:
        _run(spec, x, 3 * x)
    assert 1 <= err.value.epoch <= 100


def test_early_stopping_watches_val_loss():
    spec = _moons_spec(
        epochs=500,
        optimizer={"name": "adam", "learning_rate": 0.05},
        early_stopping={"patience": 5, "min_delta": 1e-3},
    )
    trainer, results = _run(spec, MOONS.x, MOONS.y)
    assert trainer.stopped_early
    assert len(results) < 500
    best = min(r.val_loss for r in results)
    assert all(r.val_loss >= best - 1e-3 for r in results[-5:])


def test_learning_rate_schedules():
    base = {"network": {"layers": [2, 1]}, "optimizer": {"learning_rate": 0.8}, "epochs": 5}
    step = TrainSpec.model_validate(
        base | {"lr_schedule": {"name": "step", "step_size": 2, "gamma": 0.5}}
    )
    expo = TrainSpec.model_validate(base | {"lr_schedule": {"name": "exponential", "gamma": 0.9}})
    _, rs = _run(step, XOR.x, XOR.y)
    _, re = _run(expo, XOR.x, XOR.y)
    assert [r.learning_rate for r in rs] == [0.8, 0.8, 0.4, 0.4, 0.2]
    np.testing.assert_allclose([r.learning_rate for r in re], 0.8 * 0.9 ** np.arange(5))


def test_l2_shrinks_weights_but_not_biases():
    """With a zero data gradient, (λ/2n)·Σ‖W‖² decays W by (1 − αλ/n) per step; b stays."""
    spec = TrainSpec.model_validate(
        {
            "network": {"layers": [2, 2], "output_activation": "identity", "init": "uniform"},
            "l2": 1.0,
            "optimizer": {"learning_rate": 0.1},
            "epochs": 1,
        }
    )
    trainer = Trainer(spec, np.zeros((4, 2)), np.zeros((4, 2)))
    W0, b0 = trainer.weights[0], trainer.biases[0]
    trainer.network.b[0][...] = 0.0  # zero outputs, so the data gradient is zero
    next(trainer.epochs())
    np.testing.assert_allclose(trainer.weights[0], W0 * (1 - 0.1 * 1.0 / 4))
    np.testing.assert_array_equal(trainer.biases[0], 0.0)
    assert not np.array_equal(b0, 0.0)


def test_epoch_result_reports_every_layer():
    _, results = _run(_moons_spec(epochs=2), MOONS.x, MOONS.y)
    r = results[-1]
    assert len(r.grad_norm_weights) == len(r.grad_norm_biases) == 3
    assert all(v > 0 for v in r.grad_norm_weights + r.grad_norm_biases)
    assert r.duration_ms > 0
    assert r.learning_rate == 0.01
    assert 0 <= r.accuracy <= 1
    assert 0 <= r.val_accuracy <= 1


def test_regression_has_no_accuracy():
    sine = datasets.load("sine")
    spec = TrainSpec.model_validate(
        {
            "network": {"layers": [1, 8, 1], "activation": "tanh", "output_activation": "identity"},
            "epochs": 3,
        }
    )
    _, results = _run(spec, sine.x, sine.y)
    assert results[-1].accuracy is None
    assert results[-1].val_loss is None


def test_gathering_per_batch_equals_gathering_per_epoch(monkeypatch):
    """Large data is gathered batch by batch, small data once per epoch: same numbers."""
    _, per_epoch = _run(_moons_spec(), MOONS.x, MOONS.y)
    monkeypatch.setattr(train, "_CACHE_BYTES", 0)
    trainer, per_batch = _run(_moons_spec(), MOONS.x, MOONS.y)
    assert not trainer._gather_epoch
    assert [r.loss for r in per_batch] == [r.loss for r in per_epoch]
    assert [r.accuracy for r in per_batch] == [r.accuracy for r in per_epoch]


def test_loss_is_the_data_cost_and_penalised_loss_adds_the_l2_penalty():
    """Full batch: the epoch's loss is C at the weights before its one update, and
    penalised_loss is C + (λ/2n)·Σ‖W‖² there (gradcheck.cost computes both independently)."""
    spec = TrainSpec.model_validate(
        {"network": {"layers": [2, 4, 1]}, "l2": 0.3, "epochs": 1, "optimizer": {"name": "sgd"}}
    )
    trainer = Trainer(spec, XOR.x, XOR.y)
    x, y = XOR.x.astype(float), XOR.y.astype(float)[:, None]
    data_cost = gradcheck.cost(trainer.network, x, y, trainer.loss)
    penalised = gradcheck.cost(trainer.network, x, y, trainer.loss, l2=0.3)
    (result,) = trainer.epochs()
    assert result.loss == pytest.approx(data_cost, rel=1e-12)
    assert result.penalised_loss == pytest.approx(penalised, rel=1e-12)
    assert result.penalised_loss > result.loss


def test_penalised_loss_weighs_each_batch_penalty_by_its_rows():
    """Mini-batches of 3, 3 and 2 rows: each batch's penalty at the weights of its own forward
    pass, weighted as the batch losses are, replayed here one batch at a time."""
    x, y = MOONS.x[:8], MOONS.y[:8]
    spec = _moons_spec(batch_size=3, validation_split=0.0, shuffle=False, epochs=1, l2=0.5)
    trainer = Trainer(spec, x, y)
    replay = Trainer(spec, x, y)
    X, Y = data.prepare(spec, x, y)
    expected = 0.0
    for start in (0, 3, 6):
        xb, yb = X[start : start + 3], Y[start : start + 3]
        expected += len(xb) * gradcheck.cost(
            replay.network, xb, yb, replay.loss, l2=0.5 * len(xb) / 8
        )
        grad = gradcheck.analytic_gradient(
            replay.network, xb, yb, replay.loss, l2=0.5 * len(xb) / 8
        )
        replay.optimizer.step(replay.network.theta, grad, spec.optimizer.learning_rate)
    (result,) = trainer.epochs()
    assert result.penalised_loss == pytest.approx(expected / 8, rel=1e-12)
    assert _run(_moons_spec(l2=0.0, epochs=1), MOONS.x, MOONS.y)[1][0].penalised_loss is None
