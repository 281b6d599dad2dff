"""Forks in the engine: a parent's state after epoch k, changed as the child's spec says."""

import json

import numpy as np
import pytest

from backprop import datasets
from backprop.fork import fork_state, unforkable
from backprop.spec import TrainSpec
from backprop.train import Trainer

MOONS = datasets.load("moons", seed=0, n=300)


def _spec(**changes) -> TrainSpec:
    body = {
        "network": {"layers": [2, 8, 2], "activation": "tanh", "output_activation": "softmax"},
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.02},
        "epochs": 30,
        "batch_size": 32,
        "validation_split": 0.2,
        "seed": 3,
    }
    return TrainSpec.model_validate(body | changes)


def _stored(state):
    """Through bytes and JSON, as a worker keeps it."""
    arrays = {k: np.frombuffer(v.tobytes(), v.dtype).copy() for k, v in state["arrays"].items()}
    return {"arrays": arrays, "meta": json.loads(json.dumps(state["meta"]))}


def _history(spec):
    """Every epoch's result, θ after it, and the state after epoch k for each k."""
    trainer = Trainer(spec, MOONS.x, MOONS.y)
    results, thetas, states = [], [], {0: _stored(trainer.state())}
    for r in trainer.epochs():
        results.append(r)
        thetas.append(trainer.network.theta.copy())
        states[r.epoch] = _stored(trainer.state())
    return results, thetas, states


def _continue(parent, child, state):
    trainer = Trainer.restore(child, MOONS.x, MOONS.y, fork_state(state, parent, child))
    results, thetas = [], []
    for r in trainer.epochs():
        results.append(r)
        thetas.append(trainer.network.theta.copy())
    return trainer, results, thetas


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_fork_without_changes_repeats_the_parent_bit_for_bit(optimizer, dtype):
    spec = _spec(
        optimizer={"name": optimizer, "learning_rate": 0.02},
        dtype=dtype,
        early_stopping={"patience": 4, "min_delta": 1e-3},
        epochs=200,
    )
    results, thetas, states = _history(spec)
    E = len(results)
    assert E < 200, "early stopping should end the parent before its last epoch"
    k = E // 2
    _, forked, forked_thetas = _continue(spec, spec, states[k])
    assert [r.epoch for r in forked] == list(range(k + 1, E + 1))
    assert [r.loss for r in forked] == [r.loss for r in results[k:]]
    assert [r.val_loss for r in forked] == [r.val_loss for r in results[k:]]
    for mine, theirs in zip(forked_thetas, thetas[k:], strict=True):
        assert mine.tobytes() == theirs.tobytes()


def test_a_new_learning_rate_takes_effect_from_the_next_epoch_and_keeps_the_moments():
    parent = _spec()
    results, _, states = _history(parent)
    child = _spec(optimizer={"name": "adam", "learning_rate": 0.005})
    trainer, forked, _ = _continue(parent, child, states[10])
    assert [r.learning_rate for r in forked] == [0.005] * 20
    assert forked[0].loss != results[10].loss
    assert trainer.optimizer.t == states[10]["meta"]["optimizer"]["t"] + 20 * 8  # 240 rows / 32


def test_a_new_optimizer_kind_starts_fresh():
    parent = _spec()
    _, _, states = _history(parent)
    child = _spec(optimizer={"name": "momentum", "learning_rate": 0.05, "momentum": 0.9})
    state = fork_state(states[10], parent, child)
    assert set(state["arrays"]) == {"theta"}
    trainer = Trainer.restore(child, MOONS.x, MOONS.y, state)
    assert trainer.optimizer.t == 0 and not trainer.optimizer.velocity.any()
    np.testing.assert_array_equal(trainer.network.theta, states[10]["arrays"]["theta"])


def test_a_new_seed_reshuffles_but_keeps_the_training_rows():
    parent = _spec()
    results, _, states = _history(parent)
    child = _spec(seed=99)
    trainer, forked, _ = _continue(parent, child, states[10])
    original = Trainer(parent, MOONS.x, MOONS.y)
    np.testing.assert_array_equal(trainer._x, original._x)
    np.testing.assert_array_equal(trainer._x_val, original._x_val)
    assert forked[0].loss != results[10].loss
    # Its own checkpoints carry the parent's split seed, so its resumes keep those rows too.
    assert trainer.state()["meta"]["split_seed"] == 3
    again = Trainer.restore(child, MOONS.x, MOONS.y, _stored(trainer.state()))
    np.testing.assert_array_equal(again._x_val, original._x_val)


def test_a_parent_that_stopped_early_trains_on_when_forked_with_more_epochs():
    parent = _spec(early_stopping={"patience": 2}, epochs=500)
    results, _, states = _history(parent)
    E = len(results)
    assert E < 500
    child = _spec(early_stopping={"patience": 50}, epochs=E + 20)
    _, forked, _ = _continue(parent, child, states[E])
    assert forked[0].epoch == E + 1 and len(forked) >= 1


def test_a_fork_without_early_stopping_drops_its_counters():
    parent = _spec(early_stopping={"patience": 2}, epochs=500)
    results, _, states = _history(parent)
    child = _spec(epochs=len(results) + 5)
    _, forked, _ = _continue(parent, child, states[len(results)])
    assert len(forked) == 5


def test_what_a_fork_may_not_change_is_named():
    parent = _spec()
    child = _spec(
        network={"layers": [2, 9, 2], "activation": "tanh", "output_activation": "softmax"},
        validation_split=0.3,
        dtype="float32",
    )
    assert set(unforkable(parent, child)) == {"network", "validation_split", "dtype"}
    assert unforkable(parent, _spec(epochs=5, seed=1, l2=0.1, batch_size=8)) == {}
