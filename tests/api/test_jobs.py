"""The HTTP contract of /v1/jobs, through FastAPI's TestClient on a real SQLite database."""

from __future__ import annotations

import copy
import uuid

import numpy as np
import pytest

from backprop import Trainer, TrainSpec, datasets
from tests.factories import XOR_JOB, broker_messages


def test_submit_stores_then_publishes(client, settings):
    r = client.post("/v1/jobs", json=XOR_JOB)
    assert r.status_code == 201
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert (job["epochs_total"], job["epochs_done"], job["attempt"]) == (250, 0, 0)
    assert job["spec"]["network"]["layers"] == [2, 4, 1]
    assert job["spec"]["optimizer"] == {"name": "sgd", "learning_rate": 2.0}
    assert broker_messages(settings) == 1
    assert client.get(f"/v1/jobs/{job['id']}").json()["id"] == job["id"]


def test_a_data_set_is_stored_once(client, counts):
    client.post("/v1/jobs", json=XOR_JOB)
    client.post("/v1/jobs", json=XOR_JOB | {"name": "again"})
    inline = {"inline": {"x": datasets.load("xor").x.tolist(), "y": [[0], [1], [1], [0]]}}
    client.post("/v1/jobs", json=XOR_JOB | {"dataset": inline})
    assert counts()["datasets"] == 1
    assert counts()["jobs"] == 3


def test_jobs_list_newest_first_with_cursor(client):
    ids = [client.post("/v1/jobs", json=XOR_JOB | {"name": f"j{i}"}).json()["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        page = client.get("/v1/jobs", params={"limit": 2} | ({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [j["id"] for j in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


BAD_BODIES = [
    ({"network": {"layers": [3, 4, 1]}}, "x must have shape (n_samples, 3)"),
    (
        {"network": {"layers": [2, 4, 1]}, "loss": "cross_entropy"},
        "needs network.output_activation",
    ),
    ({"network": {"layers": [2, 0, 1]}}, "network.layers.1"),
    ({"network": {"layers": [2, 4, 1]}, "optimizer": {"learning_rate": -1}}, "learning_rate"),
    ({"network": {"layers": [2, 4, 1]}, "epochs": 0}, "epochs"),
    ({"network": {"layers": [2, 4, 1]}, "colour": "red"}, "colour: Extra inputs"),
    (
        {"network": {"layers": [2, 4, 1]}, "dataset": {"builtin": "mnist"}},
        "dataset.builtin: Input should be",
    ),
    (
        {"network": {"layers": [2, 1]}, "dataset": {"inline": {"x": [[0, 1], [1]], "y": [0, 1]}}},
        "rectangular",
    ),
    (
        {"network": {"layers": [2, 1]}, "dataset": {"inline": {"x": [[0, 1]], "y": [0, 1]}}},
        "one row per sample of x (1)",
    ),
    (
        {"network": {"layers": [1, 1]}, "dataset": {"inline": {"x": [["a"]], "y": [0]}}},
        "valid number",
    ),
    ({"network": {"layers": [2, 4, 1]}, "dataset": {"id": str(uuid.uuid4())}}, "not found"),
]


@pytest.mark.parametrize(("changes", "says"), BAD_BODIES)
def test_bad_submissions_say_why_and_store_nothing(shared, changes, says):
    body = {"dataset": {"builtin": "xor"}} | changes
    before = shared.counts()
    r = shared.client.post("/v1/jobs", json=body)
    assert r.status_code in (404, 422), r.text
    assert says in r.json()["message"], r.json()["message"]
    assert shared.counts() == before


def test_nan_in_json_is_rejected(client, counts):
    raw = '{"network": {"layers": [1, 1]}, "dataset": {"inline": {"x": [[NaN]], "y": [0]}}}'
    r = client.post("/v1/jobs", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert counts()["jobs"] == 0


def test_unknown_and_malformed_ids(client):
    assert client.get(f"/v1/jobs/{uuid.uuid4()}").status_code == 404
    assert "not found" in client.get(f"/v1/jobs/{uuid.uuid4()}/epochs").json()["message"]
    r = client.get("/v1/jobs/not-a-uuid")
    assert r.status_code == 422
    assert "job_id" in r.json()["message"]
    assert client.get("/v1/jobs", params={"cursor": "bm9wZQ"}).status_code == 422


def test_epochs_are_all_reachable_by_cursor(client, trained):
    job = trained()
    epochs, cursor = [], None
    while True:
        params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        body = client.get(f"/v1/jobs/{job['id']}/epochs", params=params).json()
        epochs += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [e["epoch"] for e in epochs] == list(range(1, 251))
    assert epochs[-1]["loss"] == job["final_loss"] == job["latest_loss"]
    assert len(epochs[0]["grad_norm_weights"]) == len(epochs[0]["grad_norm_biases"]) == 2
    assert epochs[0]["learning_rate"] == 2.0


def test_snapshots_in_the_seeds_convention(client, trained):
    job = trained()
    listed = client.get(f"/v1/jobs/{job['id']}/snapshots").json()
    assert [s["epoch"] for s in listed["items"]] == [0, 50, 100, 150, 200, 250]
    latest = client.get(f"/v1/jobs/{job['id']}/snapshots/latest").json()
    assert latest["epoch"] == 250
    xor = datasets.load("xor")
    spec = TrainSpec.model_validate(
        {k: v for k, v in XOR_JOB.items() if k not in ("name", "dataset")}
    )
    trainer = Trainer(spec, xor.x, xor.y)
    initial = client.get(f"/v1/jobs/{job['id']}/snapshots/0").json()
    assert initial["layers"][0]["weights"] == trainer.weights[0].tolist()
    for _ in trainer.epochs():
        pass
    for layer, W, b in zip(latest["layers"], trainer.weights, trainer.biases, strict=True):
        assert np.array(layer["weights"]).shape == W.shape  # (n_l, n_{l-1})
        assert layer["weights"] == W.tolist()
        assert layer["biases"] == b.tolist()
    assert client.get(f"/v1/jobs/{job['id']}/snapshots/7").status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}/snapshots/last").status_code == 422


def test_health_and_readiness(client, settings):
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    assert client.get("/readyz").json()["checks"] == {"database": "ok", "broker": "ok"}
    settings.broker_file.unlink()
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["broker"].startswith("error")


def test_a_failed_publish_keeps_the_job_for_the_reaper(settings):
    from fastapi.testclient import TestClient

    from api.app import create_app

    s = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(s)) as c:
        r = c.post("/v1/jobs", json=copy.deepcopy(XOR_JOB))
        assert r.status_code == 201
        assert c.get(f"/v1/jobs/{r.json()['id']}").json()["status"] == "queued"
    from sqlalchemy import create_engine, text

    engine = create_engine(s.database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT published_at FROM jobs")).scalar() is None
    engine.dispose()


def test_tags_are_kept(client, sessions):
    from sqlalchemy import select

    from models.tables import JobTag

    job = client.post("/v1/jobs", json=XOR_JOB | {"tags": {"team": "ml", "try": "3"}}).json()
    assert job["tags"] == {"team": "ml", "try": "3"}
    with sessions() as s:
        rows = s.execute(select(JobTag.key, JobTag.value).order_by(JobTag.key)).all()
    assert [tuple(r) for r in rows] == [("team", "ml"), ("try", "3")]


def test_a_job_shows_its_attempts(client, trained):
    job = trained()
    (attempt,) = job["attempts"]
    assert attempt["attempt"] == 1
    assert attempt["reason"] == "succeeded"
    assert attempt["start_epoch"] == 0
    assert attempt["ended_at"] >= attempt["started_at"]
    assert attempt["blas_threads"] >= 1
