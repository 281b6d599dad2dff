"""End to end with real processes: HTTP API (uvicorn), Celery worker (prefork), reaper —
on the embedded set-up (SQLite + SQLite broker) and on PostgreSQL + Redis."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from backprop import Trainer, TrainSpec
from models.db import make_engine, session_factory
from tests.factories import (
    HTTP,
    dying_job,
    reference,
    service,
    snapshot_epochs,
    stored_epochs,
    stored_snapshot,
    wait_for,
)

# One xdist worker runs the module, so each set-up's service starts once.
pytestmark = pytest.mark.xdist_group("e2e-service")

BODY = {
    "name": "e2e",
    "network": {"layers": [2, 8, 2], "activation": "tanh", "output_activation": "softmax"},
    "loss": "cross_entropy",
    "optimizer": {"name": "momentum", "learning_rate": 0.1},
    "epochs": 300,
    "batch_size": 16,
    "snapshot_every": 40,
    "validation_split": 0.2,
    "dataset": {"builtin": "moons", "seed": 3, "n": 120},
}


@pytest.fixture(scope="module", params=["embedded", "postgresql+redis"])
def stack(request, databases, redis_indexes, tmp_path_factory):
    """One service per set-up for the module: starting and stopping one costs seconds of CPU,
    and each test here finds its own jobs by id."""
    tmp = tmp_path_factory.mktemp("e2e")
    with service(request.param, databases, redis_indexes, tmp) as found:
        yield found


def test_submit_train_and_read_back(stack):
    r = HTTP.post(f"{stack.url}/v1/jobs", json=BODY)
    assert r.status_code == 201, r.text
    job = wait_for(stack.url, r.json()["id"], timeout=90)
    assert job["status"] == "succeeded", job
    assert (job["epochs_done"], job["attempt"]) == (300, 1)

    job_id = uuid.UUID(job["id"])
    engine = make_engine(stack.env["DELTAFLOW_DATABASE_URL"])
    with session_factory(engine)() as s:
        epochs = stored_epochs(s, job_id)
        snaps = snapshot_epochs(s, job_id)
        Ws, bs = stored_snapshot(s, job_id, 300, BODY)
    engine.dispose()
    assert epochs == list(range(1, 301))  # each epoch exactly once
    assert snaps == [0, 40, 80, 120, 160, 200, 240, 280, 300]

    trained = reference(BODY)
    for got, want in zip(Ws + bs, trained.weights + trained.biases, strict=True):
        assert got.shape == want.shape
        assert got.tobytes() == want.tobytes()  # bit for bit
    latest = HTTP.get(f"{stack.url}/v1/jobs/{job['id']}/snapshots/latest").json()
    np.testing.assert_array_equal(latest["layers"][0]["weights"], trained.weights[0])


def test_several_jobs_on_one_worker(stack):
    ids = [
        HTTP.post(
            f"{stack.url}/v1/jobs", json=BODY | {"epochs": 40, "seed": seed, "name": f"s{seed}"}
        ).json()["id"]
        for seed in range(4)
    ]
    jobs = [wait_for(stack.url, i, timeout=90) for i in ids]
    assert [j["status"] for j in jobs] == ["succeeded"] * 4
    assert len({j["final_loss"] for j in jobs}) == 4


def test_a_batch_of_twelve_completes(stack):
    body = {
        "name": "e2e sweep",
        "base": BODY | {"epochs": 30},
        "grid": {
            "optimizer.learning_rate": [0.05, 0.2],
            "network.layers": [[2, 4, 2], [2, 8, 2]],
            "seed": [1, 2, 3],
        },
    }
    created = HTTP.post(f"{stack.url}/v1/batches", json=body)
    assert created.status_code == 201, created.text
    batch = created.json()
    assert batch["size"] == 12
    jobs = [wait_for(stack.url, i, timeout=90) for i in batch["job_ids"]]
    assert {j["status"] for j in jobs} == {"succeeded"}
    summary = HTTP.get(f"{stack.url}/v1/batches/{batch['id']}").json()
    assert (summary["total"], summary["done"], summary["counts"]) == (12, 12, {"succeeded": 12})
    losses = [row["best_loss"] for row in summary["leaderboard"]]
    assert losses == sorted(losses)


def test_a_stop_rule_ends_the_job_as_stopped_with_its_alert(stack):
    """Uncentred inputs and a large Adam step kill most ReLU units of layer 1 by epoch 2:
    stop_when ends the job there, as `stopped` with the alert as its reason, the epochs up to
    it stored and none after; the stored health figures are the engine's."""
    body, x, y = dying_job()
    spec = {k: v for k, v in body.items() if k not in ("name", "dataset")}
    r = HTTP.post(f"{stack.url}/v1/jobs", json=body)
    assert r.status_code == 201, r.text
    job = wait_for(stack.url, r.json()["id"], timeout=60)
    trainer = Trainer(TrainSpec.model_validate(spec), x, y)
    want = list(trainer.epochs())
    stop = trainer.stopped_by
    assert job["status"] == "stopped", job
    assert job["reason"] == stop.message and stop.message.startswith("layer 1: ")
    assert job["epochs_done"] == want[-1].epoch == stop.since < 50
    assert [a["message"] for a in job["health"]] == [a["message"] for a in trainer.watch.report()]
    columns = HTTP.get(f"{stack.url}/v1/jobs/{job['id']}/epochs", params={
        "format": "columns", "fields": "dead_fraction,update_ratio_weights,nonfinite"},
    ).json()["columns"]  # fmt: skip
    assert columns["epoch"] == [r.epoch for r in want]
    got = np.array(columns["dead_fraction"], dtype=float)
    np.testing.assert_array_equal(got, [r.dead_fraction for r in want])
    assert columns["update_ratio_weights"] == [r.update_ratio_weights for r in want]
    assert columns["nonfinite"] == [0.0] * len(want)
