"""Health alerts and stop rules (backprop/rules.py): when each rule fires, on which layer and
since which epoch; what it says; that stop_when ends a run at that epoch; that a resumed run
reports what an uninterrupted one does; and that the spec refuses rules it cannot apply."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pytest
from pydantic import ValidationError

from backprop import Trainer, TrainSpec, datasets
from backprop.fork import fork_state
from backprop.rules import Watch
from tests.factories import dying_job

NAN = math.nan


@dataclass
class Epoch:
    """The fields of an EpochResult the rules read, for a 4-8-6-2 network."""

    epoch: int
    loss: float = 1.0
    val_loss: float | None = None
    dead_fraction: list[float] = field(default_factory=lambda: [0.0, 0.0, NAN])
    saturated_fraction: list[float] = field(default_factory=lambda: [NAN, NAN, NAN])
    update_ratio_weights: list[float] = field(default_factory=lambda: [1e-3, 1e-3, 1e-3])
    nonfinite: float = 0.0


def _watch(**changes) -> Watch:
    body = {"network": {"layers": [4, 8, 6, 2], "activation": "relu"}} | changes
    return Watch(TrainSpec.model_validate(body))


def _run(watch: Watch, epochs: list[Epoch]) -> list:
    return [watch.update(e) for e in epochs]


def test_dead_units_fire_at_once_name_the_layer_and_end_when_they_recover():
    watch = _watch()
    dead = [0.0, 5 / 6, NAN]  # layer 2: 5 of 6
    _run(watch, [Epoch(1), Epoch(2, dead_fraction=dead), Epoch(3, dead_fraction=dead)])
    (alert,) = watch.report()
    assert alert == {"rule": "dead_units", "layer": 2, "since": 2, "epoch": 3, "active": True,
                     "message": "layer 2: 5 of 6 units dead since epoch 2"}  # fmt: skip
    watch.update(Epoch(4))
    assert watch.report()[0]["active"] is False and watch.report()[0]["epoch"] == 3
    watch.update(Epoch(5, dead_fraction=[0.5, 0.0, NAN]))  # 4 of 8: not more than half
    assert len(watch.report()) == 1


def test_the_update_ratio_fires_after_its_run_of_epochs_and_a_nan_breaks_the_run():
    watch = _watch(health={"update_ratio": {"epochs": 3}})
    low = [1e-3, 1e-7, 1e-3]
    _run(watch, [Epoch(1, update_ratio_weights=low), Epoch(2, update_ratio_weights=low)])
    assert watch.report() == []
    watch.update(Epoch(3, update_ratio_weights=[NAN, NAN, NAN]))  # no ratio: the run ends
    _run(watch, [Epoch(e, update_ratio_weights=low) for e in (4, 5, 6)])
    (alert,) = watch.report()
    assert (alert["layer"], alert["since"], alert["epoch"]) == (2, 4, 6)
    assert alert["message"] == "layer 2: update ratio ‖ΔW‖/‖W‖ 1e-07, below 1e-05 since epoch 4"


def test_a_plateau_and_a_non_finite_value_fire_for_the_network():
    watch = _watch(health={"plateau": {"patience": 3, "min_delta": 0.1}})
    losses = [1.0, 0.95, 0.92, 0.91, 0.5]  # 0.95…0.91 are within min_delta of 1.0
    _run(watch, [Epoch(e, loss=v) for e, v in enumerate(losses, start=1)])
    (plateau,) = watch.report()
    assert (plateau["rule"], plateau["layer"], plateau["since"], plateau["epoch"]) == (
        "plateau", None, 2, 4)  # fmt: skip
    assert plateau["active"] is False  # 0.5 is an improvement
    assert plateau["message"] == ("loss has not fallen below 1 by more than 0.1 in 3 epochs "
                                  "since epoch 2")  # fmt: skip
    watch.update(Epoch(6, nonfinite=1.0, loss=0.4))
    assert watch.report()[-1]["message"] == "a NaN or infinity appeared since epoch 6"


def test_stop_when_answers_the_alert_that_ends_the_run():
    watch = _watch(stop_when=["saturated_units"])
    assert watch.update(Epoch(1, dead_fraction=[1.0, 0.0, NAN])) is None  # not a stop rule
    stop = watch.update(Epoch(2, saturated_fraction=[0.0, 1.0, NAN]))
    assert (stop.rule, stop.layer, stop.since) == ("saturated_units", 2, 2)


def test_dead_units_stop_the_uncentred_fixture_at_epoch_2_naming_layer_1(uncentred):
    spec = TrainSpec.model_validate({
        "network": {"layers": [784, 128, 64, 10], "activation": "relu",
                    "output_activation": "softmax", "init": "xavier"},
        "loss": "cross_entropy", "optimizer": {"name": "adam", "learning_rate": 1e-2},
        "epochs": 10, "batch_size": 32, "shuffle": False, "stop_when": ["dead_units"],
    })  # fmt: skip
    trainer = Trainer(spec, *uncentred)
    results = list(trainer.epochs())
    assert [r.epoch for r in results] == [1, 2]  # epoch 2 is the last: none after it
    stop = trainer.stopped_by
    assert (stop.rule, stop.layer, stop.since) == ("dead_units", 1, 2)
    dead = round(results[1].dead_fraction[0] * 128)
    assert stop.message == f"layer 1: {dead} of 128 units dead since epoch 2"


def test_a_resumed_run_reports_what_an_uninterrupted_one_does():
    moons = datasets.load("moons", seed=0, n=200)
    spec = TrainSpec.model_validate({
        "network": {"layers": [2, 16, 2], "activation": "relu", "output_activation": "softmax"},
        "loss": "cross_entropy", "optimizer": {"name": "sgd", "learning_rate": 1e-6},
        "epochs": 12, "batch_size": 50, "health": {"update_ratio": {"epochs": 4}},
    })  # fmt: skip
    whole = Trainer(spec, moons.x, moons.y)
    list(whole.epochs())
    first = Trainer(spec, moons.x, moons.y)
    for _ in zip(range(5), first.epochs(), strict=False):
        pass
    resumed = Trainer.restore(spec, moons.x, moons.y, first.state())
    list(resumed.epochs())
    assert resumed.watch.report() == whole.watch.report()
    assert {a["rule"] for a in whole.watch.report()} == {"update_ratio"}


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"stop_when": ["dead"]}, "Input should be 'dead_units'"),
        ({"stop_when": ["plateau", "plateau"]}, "names the rule 'plateau' twice"),
        ({"health": {"update_ratio": {"low": 0.1, "high": 0.01}}}, "low (0.1) must be below"),
        ({"health": {"dead_units": 1.5}}, "less than 1"),
    ],
)
def test_the_spec_refuses_rules_it_cannot_apply(changes, says):
    with pytest.raises(ValidationError, match=re.escape(says)):
        TrainSpec.model_validate({"network": {"layers": [2, 2]}} | changes)


def test_a_fork_of_a_stopped_run_goes_on_while_the_same_alert_holds():
    """The rule that stopped the parent is still firing at the fork's epoch: it does not stop
    the fork again (it would have to end and fire anew), so a fork can go on from it."""
    body, x, y = dying_job()
    spec = TrainSpec.model_validate({k: v for k, v in body.items() if k not in ("name", "dataset")})
    parent = Trainer(spec, x, y)
    list(parent.epochs())
    assert parent.stopped_by is not None and parent.epoch == 2
    child_spec = spec.model_copy(update={"epochs": 6})
    child = Trainer.restore(child_spec, x, y, fork_state(parent.state(), spec, child_spec))
    results = list(child.epochs())
    assert [r.epoch for r in results] == [3, 4, 5, 6] and child.stopped_by is None
    assert child.watch.report()[0]["since"] == 2 and child.watch.report()[0]["active"]
