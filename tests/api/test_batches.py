"""Batch runs: grid expansion and validation, the leaderboard, and retrying failed jobs."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.app import create_app
from models.tables import Job, JobTag
from tests.api.setups import SETUPS, setup
from tests.factories import XOR_JOB, sessions_on
from worker.runner import Runner

BASE = XOR_JOB | {"epochs": 30, "snapshot_every": 10}
SINE = {"network": {"layers": [1, 8, 1]}, "dataset": {"builtin": "sine"}, "epochs": 5}
GRID = {
    "optimizer.learning_rate": [0.5, 2.0],
    "network.layers": [[2, 3, 1], [2, 6, 1]],
    "seed": [1, 2, 3],
}


def _create(client, grid=GRID, base=BASE, name="sweep"):
    return client.post("/v1/batches", json={"name": name, "base": base, "grid": grid})


def test_one_job_per_grid_point(client, counts):
    r = _create(client)
    assert r.status_code == 201, r.text
    batch = r.json()
    assert batch["size"] == len(batch["job_ids"]) == 12
    assert r.headers["location"] == f"/v1/batches/{batch['id']}"
    points = []
    for job_id in batch["job_ids"]:
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["batch_id"] == batch["id"]
        assert (
            job["spec"]["optimizer"]["learning_rate"]
            == job["grid_point"]["optimizer.learning_rate"]
        )
        assert job["spec"]["network"]["layers"] == job["grid_point"]["network.layers"]
        assert job["spec"]["seed"] == job["grid_point"]["seed"]
        points.append(tuple(map(str, job["grid_point"].values())))
    assert len(set(points)) == 12
    assert counts()["datasets"] == 1
    listed = client.get("/v1/jobs", params={"batch_id": batch["id"], "limit": 500}).json()
    assert len(listed["items"]) == 12


@pytest.fixture(params=SETUPS)
def each_setup(request, databases, redis_indexes, tmp_path):
    """A client and the settings of its app, on each set-up."""
    with (
        setup(request.param, databases, redis_indexes, tmp_path) as s,
        TestClient(create_app(s)) as client,
    ):
        yield client, s


# What differs between a batch's job and the same job submitted alone.
PER_JOB = {"id", "name", "batch_id", "grid_point"}


def _stored(database_url: str, job_id: str) -> dict:
    """A job's columns as stored (times as whether they are set) and its tags."""
    with sessions_on(database_url) as sessions, sessions() as s:
        job = s.get_one(Job, uuid.UUID(job_id))
        tags = s.execute(select(JobTag.key, JobTag.value).where(JobTag.job_id == job.id)).all()
        row = {c.key: getattr(job, c.key) for c in Job.__table__.columns if c.key not in PER_JOB}
    return {k: v is not None if k.endswith("_at") else v for k, v in row.items()} | {
        "tags rows": sorted(tags)
    }


def test_a_batch_job_is_stored_as_a_job_submitted_alone(each_setup):
    """Batch jobs are inserted in bulk, not by submission.add_job: the rows must not differ."""
    client, settings = each_setup
    body = BASE | {"tags": {"team": "a", "kind": "sweep"}, "seed": 7}
    alone = client.post("/v1/jobs", json=body).json()["id"]
    batch = client.post("/v1/batches", json={"name": "b", "base": body, "grid": {"seed": [7]}})
    assert batch.status_code == 201, batch.text
    (in_batch,) = batch.json()["job_ids"]
    assert _stored(settings.database_url, in_batch) == _stored(settings.database_url, alone)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"grid": {"optimizer.lr": [0.1]}}, "'optimizer.lr' is not a field"),
        ({"grid": {"learning_rate": [0.1]}}, "did you mean optimizer.learning_rate"),
        ({"grid": {"seed": []}}, "at least one value"),
        ({"grid": {"network.layers": [[2, 4, 1], [3, 4, 1]]}}, "x must have shape (n_samples, 3)"),
        (
            {"grid": {"optimizer.learning_rate": [0.1, -1]}},
            "grid point {'optimizer.learning_rate': -1}",
        ),
        ({"grid": {"seed": list(range(40)), "epochs": list(range(1, 40))}}, "limit of 1000"),
        ({"base": BASE | {"epochs": 0}}, "base.epochs"),
        ({"base": {k: v for k, v in BASE.items() if k != "dataset"}}, "base.dataset"),
        ({"grid": {"dataset": [{"builtin": "and"}]}}, "'dataset' is not a field"),
        (  # the data is checked once per (input, output, loss, dtype): the loss is in the key
            {"base": SINE, "grid": {"loss": ["mse", "binary_cross_entropy"]}},
            "grid point {'loss': 'binary_cross_entropy'}: y holds targets outside [0, 1]",
        ),
    ],
)
def test_a_bad_grid_stores_nothing(shared, body, says):
    before = shared.counts()
    r = shared.client.post("/v1/batches", json={"name": "bad", "base": BASE, "grid": GRID} | body)
    assert r.status_code == 422, r.text
    assert says in r.json()["message"], r.json()["message"]
    assert shared.counts() == before


def test_leaderboard_and_counts(client, sessions, settings):
    batch = _create(client, grid={"optimizer.learning_rate": [0.1, 1.0, 4.0]}).json()
    runner = Runner(sessions, settings)
    for job_id in batch["job_ids"][:2]:
        assert runner.run(uuid.UUID(job_id)) == "succeeded"
    body = client.get(f"/v1/batches/{batch['id']}").json()
    assert (body["total"], body["done"]) == (3, 2)
    assert body["counts"] == {"succeeded": 2, "queued": 1}
    board = body["leaderboard"]
    assert [row["best_loss"] is None for row in board] == [False, False, True]
    assert board[0]["best_loss"] <= board[1]["best_loss"]
    assert board[0]["grid_point"] == {"optimizer.learning_rate": 1.0}  # the faster rate wins
    assert client.get("/v1/batches").json()["items"][0]["id"] == batch["id"]


def test_retry_requeues_only_failed_and_cancelled(client, sessions, settings):
    batch = _create(client, grid={"seed": [1, 2, 3, 4]}).json()
    ids = [uuid.UUID(i) for i in batch["job_ids"]]
    assert Runner(sessions, settings).run(ids[0]) == "succeeded"
    with sessions.begin() as s:
        s.execute(update(Job).where(Job.id == ids[1]).values(status="failed", error="x", attempt=3))
        s.execute(update(Job).where(Job.id == ids[2]).values(status="cancelled"))
    r = client.post(f"/v1/batches/{batch['id']}/retry")
    assert r.status_code == 200
    assert sorted(r.json()["requeued"]) == sorted(map(str, ids[1:3]))
    statuses = [client.get(f"/v1/jobs/{i}").json() for i in ids]
    assert [j["status"] for j in statuses] == ["succeeded", "queued", "queued", "queued"]
    assert statuses[1]["error"] is None and statuses[1]["attempt"] == 0
    assert Runner(sessions, settings).run(ids[1]) == "succeeded"
    assert client.post(f"/v1/batches/{batch['id']}/retry").json() == {"requeued": []}


def test_unknown_batch(client):
    assert client.get(f"/v1/batches/{uuid.uuid4()}").status_code == 404
    assert client.post(f"/v1/batches/{uuid.uuid4()}/retry").status_code == 404
