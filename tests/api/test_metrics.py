"""GET /metrics: Prometheus text from the database; open, behind a key, or not served."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import func, select

from api.app import create_app
from models.tables import Job
from tests.factories import XOR_JOB, all_epochs

BOOTSTRAP = "bootstrap-" + "m" * 32


@pytest.fixture
def app_with(settings):
    """A running app whose settings differ from the directory's in `changes`."""
    clients = []

    def make(**changes) -> TestClient:
        client = TestClient(create_app(settings.model_copy(update=changes)))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def samples(text: str) -> dict[str, float]:
    return {
        s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_are_open_by_default_and_match_the_database(client, trained, sessions):
    trained()
    trained(XOR_JOB | {"epochs": 40})
    client.post("/v1/jobs", json=XOR_JOB)  # queued: no worker runs in this test
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    m = samples(r.text)
    with sessions() as s:
        by_status = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        epochs = len(all_epochs(s))
    assert by_status == {"succeeded": 2, "queued": 1}
    assert m["deltaflow_jobs|status=succeeded"] == 2
    assert m["deltaflow_jobs|status=queued"] == m["deltaflow_queue_depth"] == 1
    assert m["deltaflow_jobs|status=running"] == 0
    assert m["deltaflow_epochs_trained_total"] == epochs == 290
    assert m["deltaflow_epoch_duration_seconds_count"] == epochs
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_metrics_off_is_not_found_and_not_documented(app_with):
    client = app_with(metrics="off")
    r = client.get("/metrics")
    assert r.status_code == 404
    assert "message" in r.json()
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_metrics_key_needs_a_valid_key_even_with_auth_off(app_with):
    client = app_with(metrics="key", bootstrap_key=SecretStr(BOOTSTRAP))
    r = client.get("/metrics")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "API key" in r.json()["message"]
    bad = client.get("/metrics", headers={"Authorization": "Bearer dfk_not-a-key"})
    assert bad.status_code == 401
    ok = client.get("/metrics", headers={"Authorization": f"Bearer {BOOTSTRAP}"})
    assert ok.status_code == 200
    assert samples(ok.text)["deltaflow_queue_depth"] == 0
    created = client.post("/v1/keys", json={"name": "prometheus", "owner": "ops"}).json()
    stored = {"Authorization": f"Bearer {created['key']}"}
    assert client.get("/metrics", headers=stored).status_code == 200
    client.delete(f"/v1/keys/{created['id']}")
    assert client.get("/metrics", headers=stored).status_code == 401
