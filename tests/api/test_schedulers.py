"""Batch schedulers (tune/): successive halving, ASHA, Hyperband, the median rule and PBT, run by
the worker's runner in this process as one worker taking a first-in, first-out queue.

What they show: the budget of successive halving is exactly the paper's (297 epochs for 81
configurations, η = 3, rungs 1/3/9/27/81); a promoted trial ends bit-identical to a standalone
run of its configuration; the same batch twice makes the same decisions; ASHA promotes before
its rung closes; every trial ends, and the decision log agrees with the statuses; a PBT clone
starts from its source's exact state at that epoch with the explored hyperparameters.
"""

from __future__ import annotations

import uuid
from collections import Counter, deque

import numpy as np
import pytest
from sqlalchemy import select

from models import history
from models.status import TERMINAL
from models.tables import Checkpoint
from tests.factories import XOR_JOB, dying_job, reference
from worker.persist import load_checkpoint
from worker.runner import Runner

BASE = XOR_JOB | {"epochs": 81, "snapshot_every": 1000}
LR = {"optimizer.learning_rate": {"loguniform": [0.05, 5.0]}}


def batch(client, scheduler, num_samples=9, base=BASE, space=LR, grid=None, seed=3) -> dict:
    body = {"name": "tune", "base": base, "space": space, "num_samples": num_samples,
            "seed": seed, "scheduler": scheduler, "grid": grid or {}}  # fmt: skip
    r = client.post("/v1/batches", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def drive(sessions, settings, created: dict) -> dict:
    """Run the batch to the end as one worker would: first in, first out, the trials that a
    decision queues going to the back."""
    queue = deque(uuid.UUID(i) for i in created["job_ids"])
    runner = Runner(sessions, settings, publish=queue.extend)
    while queue:
        runner.run(queue.popleft())
    return created


def read(client, created: dict) -> dict:
    return client.get(f"/v1/batches/{created['id']}").json()


def log_of(out: dict) -> list[tuple]:
    return [(d["trial"], d["action"], d["epoch"], d["rung"]) for d in out["decisions"]]


def assert_consistent(out: dict) -> None:
    """Every trial ended, and its status is what its last decision made it."""
    assert all(t["status"] in TERMINAL for t in out["trials"]), out["counts"]
    promoted = Counter(
        (d["job_id"], d["rung"]) for d in out["decisions"] if d["action"] == "promoted"
    )
    assert max(promoted.values(), default=1) == 1  # nobody promoted twice from a rung
    for t in out["trials"]:
        last = t["decision"]
        if t["status"] == "stopped":
            assert last["action"] == "stopped"
        if t["status"] == "succeeded" and last is not None:
            assert last["action"] in ("promoted", "cloned")


def test_successive_halving_trains_exactly_297_epochs(client, sessions, settings):
    sha = {"name": "sha", "min_epochs": 1, "reduction_factor": 3}
    out = read(client, drive(sessions, settings, batch(client, sha, num_samples=81)))
    assert out["epochs_trained"] == 297  # 81·1 + 27·2 + 9·6 + 3·18 + 1·54
    assert out["counts"] == {"succeeded": 1, "stopped": 80}
    ladder = [(r["epoch"], r["reached"], r["promoted"], r["stopped"]) for r in out["rungs"]]
    assert ladder == [(1, 81, 27, 54), (3, 27, 9, 18), (9, 9, 3, 6), (27, 3, 1, 2)]
    assert_consistent(out)
    winner = out["leaderboard"][0]
    assert winner["status"] == "succeeded" and winner["epoch"] == 81


def test_a_promoted_trial_ends_bit_identical_to_a_standalone_run(client, sessions, settings):
    sha = {"name": "sha", "reduction_factor": 3}
    out = read(client, drive(sessions, settings, batch(client, sha, num_samples=9)))
    winner = next(t for t in out["trials"] if t["status"] == "succeeded")
    job = client.get(f"/v1/jobs/{winner['job_id']}").json()
    alone = reference(BASE | {"optimizer": job["spec"]["optimizer"]})
    with sessions() as s:
        assert theta_at(s, job["id"], 81) == alone.network.theta.tobytes()
    attempts = job["attempts"]
    # Paused at rungs 1, 3, 9 and 27 (η = 3 below 81), each run resumed from the last.
    assert [a["start_epoch"] for a in attempts] == [0, 1, 3, 9, 27]
    assert [a["reason"] for a in attempts] == ["paused"] * 4 + ["succeeded"]


def theta_at(s, job_id: str, epoch: int) -> bytes:
    found, theta = history.snapshot(s, uuid.UUID(job_id), epoch, np.dtype("float64"))
    assert found == epoch
    return theta.tobytes()


def test_the_same_batch_twice_makes_the_same_decisions(client, sessions, settings):
    asha = {"name": "asha", "reduction_factor": 3}
    first = read(client, drive(sessions, settings, batch(client, asha, num_samples=12)))
    again = read(client, drive(sessions, settings, batch(client, asha, num_samples=12)))
    assert log_of(first) and log_of(first) == log_of(again)
    assert_consistent(first)


def test_asha_promotes_before_its_rung_closes(client, sessions, settings):
    asha = {"name": "asha", "reduction_factor": 3}
    out = read(client, drive(sessions, settings, batch(client, asha, num_samples=12)))
    at_rung_0 = [d["action"] for d in out["decisions"] if d["rung"] == 0]
    first_promotion = at_rung_0.index("promoted")
    assert "paused" in at_rung_0[first_promotion:]  # trials still arrived after it
    assert out["epochs_trained"] < 12 * 81


def test_hyperband_fills_its_brackets_and_ends_every_trial(client, sessions, settings):
    hb = {"name": "hyperband", "min_epochs": 3, "max_epochs": 27}
    out = read(client, drive(sessions, settings, batch(client, hb, num_samples=20)))
    assert_consistent(out)
    brackets = Counter(r["bracket"] for r in out["rungs"])
    assert sorted(brackets) == [0, 1]  # rungs 3, 9 and 9: bracket 2 trains 27 epochs straight
    assert out["counts"]["succeeded"] >= 3


def test_the_median_rule_stops_trials_at_the_epoch_it_fires(client, sessions, settings):
    median = {"name": "median", "grace_period": 3, "min_samples": 2}
    out = read(client, drive(sessions, settings, batch(client, median, num_samples=8,
                                                       base=BASE | {"epochs": 30})))  # fmt: skip
    stopped = [d for d in out["decisions"] if d["action"] == "stopped"]
    assert stopped and out["counts"]["succeeded"] >= 2
    for d in stopped:
        job = client.get(f"/v1/jobs/{d['job_id']}").json()
        assert job["epochs_done"] == d["epoch"] and job["status"] == "stopped"
        assert "median" in job["reason"]
    assert_consistent(out)


def test_pbt_clones_carry_the_source_state_and_new_hyperparameters(client, sessions, settings):
    cfg = {"name": "pbt", "perturbation_interval": 10, "quantile_fraction": 0.5}
    out = read(client, drive(sessions, settings, batch(client, cfg, num_samples=4,
                                                       base=BASE | {"epochs": 30})))  # fmt: skip
    clones = [d for d in out["decisions"] if d["action"] == "cloned"]
    assert len(clones) == 4  # two per generation, at epochs 10 and 20
    assert_consistent(out)
    for d in clones:
        clone = client.get(f"/v1/jobs/{d['job_id']}").json()
        assert clone["parent_id"] == d["detail"]["source"]
        assert clone["forked_at_epoch"] == d["epoch"]
        assert (
            clone["spec"]["optimizer"]["learning_rate"]
            == d["detail"]["point"]["optimizer.learning_rate"]
        )
        with sessions() as s:
            start = s.scalar(
                select(Checkpoint).where(
                    Checkpoint.job_id == uuid.UUID(clone["id"]), Checkpoint.epoch == d["epoch"]
                )
            )
            theta = load_checkpoint(start)["arrays"]["theta"].tobytes()
            assert theta == theta_at(s, d["detail"]["source"], d["epoch"])
        lineage = client.get(f"/v1/jobs/{clone['id']}/lineage").json()
        assert lineage["ancestors"][0]["id"] == d["detail"]["source"]


def test_a_stop_rule_at_a_rungs_epoch_stops_the_trial_with_its_alert(client, sessions, settings):
    """The dying network (tests/factories.py) loses most of layer 1 by epoch 2, which is also
    the first rung of this successive halving: stop_when ends those trials there as stopped, with
    the alert as the job's reason and the decision's, instead of pausing them at the rung; the
    trials at a gentle step go on and the batch ends."""
    body, _, _ = dying_job()
    sha = {"name": "sha", "min_epochs": 2, "reduction_factor": 3}
    grid = {"optimizer.learning_rate": [0.3, 0.001]}
    created = batch(client, sha, num_samples=3, base=body | {"epochs": 18}, space={}, grid=grid)
    out = read(client, drive(sessions, settings, created))
    assert_consistent(out)
    jobs = {t["job_id"]: client.get(f"/v1/jobs/{t['job_id']}").json() for t in out["trials"]}
    dying = [t for t in out["trials"]
             if jobs[t["job_id"]]["spec"]["optimizer"]["learning_rate"] == 0.3]  # fmt: skip
    assert len(dying) == 3
    for t in dying:
        job = jobs[t["job_id"]]
        assert (job["status"], job["epochs_done"]) == ("stopped", 2), job
        assert job["reason"].startswith("layer 1: ") and "units dead since epoch" in job["reason"]
        assert t["decision"]["action"] == "stopped"
        assert t["decision"]["detail"]["reason"] == job["reason"]
    rung_0 = next(r for r in out["rungs"] if r["epoch"] == 2)
    assert rung_0["reached"] == 3  # only the gentle trials paused there
    assert out["counts"]["succeeded"] == 1 and out["counts"]["stopped"] == 5


SPLIT = BASE | {"validation_split": 0.25}


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        ({"scheduler": {"name": "bohb"}}, "scheduler", "'fifo', 'sha', 'asha'"),
        ({"scheduler": "asha"}, "scheduler", "object"),
        ({"scheduler": {"name": "asha", "reduction_factor": 1}}, "scheduler.asha.reduction_factor",
         "greater than or equal to 2"),
        ({"scheduler": {"name": "sha", "min_epochs": 81}}, "scheduler.min_epochs", "below max"),
        ({"scheduler": {"name": "sha", "max_epochs": 0}}, "scheduler.sha.max_epochs", "1"),
        ({"scheduler": {"name": "asha", "metric": "val_loss"}}, "scheduler.metric",
         "validation split"),
        ({"scheduler": {"name": "median", "metric": "accuracy"}}, "scheduler.metric",
         "classification"),
        ({"scheduler": {"name": "asha", "metric": "f1"}}, "scheduler.asha.metric", "loss"),
        ({"scheduler": {"name": "asha", "mode": "best"}}, "scheduler.asha.mode", "min"),
        ({"scheduler": {"name": "asha"}, "space": {"epochs": {"choice": [5, 9]}}}, "space.epochs",
         "same epochs"),
        ({"scheduler": {"name": "pbt"}, "space": {"network.layers": {"choice": [[2, 3, 1]]}}},
         "space", "may change"),
        ({"scheduler": {"name": "pbt"}, "num_samples": 1}, "num_samples", "at least 2"),
        ({"scheduler": {"name": "pbt", "quantile_fraction": 0.75}},
         "scheduler.pbt.quantile_fraction", "0.5"),
        ({"scheduler": {"name": "median", "grace_period": 0}}, "scheduler.median.grace_period",
         "1"),
        ({"scheduler": {"name": "sha", "eta": 3}}, "scheduler.sha.eta", "not permitted"),
    ],
)  # fmt: skip
def test_bad_scheduler_settings_are_refused_naming_the_field(client, counts, body, where, words):
    before = counts()
    full = {"name": "tune", "base": BASE, "space": LR, "num_samples": 4} | body
    r = client.post("/v1/batches", json=full)
    assert r.status_code == 422, r.text
    error = r.json()["detail"][0]
    assert ".".join(map(str, error["loc"])).startswith(f"body.{where}"), error
    assert words in error["msg"], error
    assert counts() == before


def test_a_metric_with_its_data_is_accepted(client):
    created = batch(client, {"name": "asha", "metric": "val_loss"}, base=SPLIT, num_samples=2)
    assert client.get(f"/v1/batches/{created['id']}").json()["scheduler"]["max_epochs"] == 81


def test_the_reaper_settles_a_batch_no_worker_will(client, sessions, settings):
    """A rung waits for a trial that is then cancelled while queued: no worker ends a run in
    that batch any more, so the reaper's pass closes the rung."""
    from worker.celery_app import make_celery
    from worker.reaper import reap_once

    created = batch(client, {"name": "sha", "reduction_factor": 3}, num_samples=3)
    first, second, third = (uuid.UUID(i) for i in created["job_ids"])
    runner = Runner(sessions, settings)
    assert runner.run(first) == "paused" and runner.run(second) == "paused"
    assert client.post(f"/v1/jobs/{third}/cancel").status_code in (200, 202)
    done = reap_once(sessions, make_celery(settings), settings)
    assert done["settled"] == 1
    out = read(client, created)
    assert sorted(t["status"] for t in out["trials"]) == ["cancelled", "queued", "stopped"]
    assert [d["actor"] for d in out["decisions"][-2:]] == ["reaper", "reaper"]
