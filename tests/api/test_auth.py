"""API keys and owners (issue 6), on the embedded set-up and on PostgreSQL + Redis: every /v1
route needs a key, only its sha256 is stored, revoked keys stop working at once, and one owner
never sees, changes or references another owner's jobs, data sets or batches."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from api.app import create_app
from models.tables import ApiKey, Job
from settings import Settings
from tests.api.conftest import Shared, shared_app
from tests.api.setups import SETUPS, setup
from tests.factories import XOR_JOB, row_counts

BOOTSTRAP = "bootstrap-" + "k" * 32


KEYS_REQUIRED = {
    "auth": "required",
    "bootstrap_key": SecretStr(BOOTSTRAP),
    "bootstrap_owner": "ops",
}


@pytest.fixture(params=SETUPS)
def settings(request, databases, redis_indexes, tmp_path) -> Iterator[Settings]:
    with setup(request.param, databases, redis_indexes, tmp_path) as s:
        yield s.model_copy(update=KEYS_REQUIRED)


@pytest.fixture(scope="module", params=SETUPS)
def locked(request, databases, redis_indexes, tmp_path_factory) -> Iterator[Shared]:
    """One app per set-up for the table of requests without a valid key: each is refused."""
    directory = tmp_path_factory.mktemp("locked")
    with (
        setup(request.param, databases, redis_indexes, directory) as s,
        shared_app(s.model_copy(update=KEYS_REQUIRED)) as found,
    ):
        yield found


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ADMIN = bearer(BOOTSTRAP)


def new_key(client, owner: str, admin: bool = False) -> dict[str, str]:
    r = client.post("/v1/keys", json={"name": owner, "owner": owner, "admin": admin}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return bearer(r.json()["key"])


def v1_operations(app) -> list[tuple[str, str]]:
    """(method, path) of every documented /v1 operation, path parameters filled with a fresh id
    (or epoch 1)."""
    found = []
    for template, operations in app.openapi()["paths"].items():
        if template.startswith("/v1"):
            path = re.sub(r"\{epoch\}", "1", template)
            path = re.sub(r"\{\w+\}", lambda _: str(uuid.uuid4()), path)
            found.extend((method.upper(), path) for method in operations)
    return found


BAD_HEADERS = {
    "missing": ({}, "needs an API key"),
    "basic scheme": ({"Authorization": "Basic dXNlcjpwYXNz"}, "must be `Bearer KEY`"),
    "bearer without key": ({"Authorization": "Bearer"}, "must be `Bearer KEY`"),
    "two tokens": ({"Authorization": "Bearer a b"}, "must be `Bearer KEY`"),
    "oversized": (bearer("x" * 5000), "must be `Bearer KEY`"),
    "unknown key": (bearer("dfk_" + "A" * 43), "not valid"),
}


@pytest.mark.parametrize("case", BAD_HEADERS, ids=list(BAD_HEADERS))
def test_every_v1_route_answers_401_without_a_valid_key(locked, case):
    headers, sentence = BAD_HEADERS[case]
    operations = v1_operations(locked.client.app)
    assert len(operations) >= 20
    for method, path in operations:
        r = locked.client.request(method, path, headers=headers, json=XOR_JOB)
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert sentence in r.json()["message"], (method, path, r.text)


def test_401_comes_before_the_body_is_read(client, sessions):
    r = client.post("/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_health_and_docs_stay_open(client):
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "401" in schema["paths"]["/v1/jobs"]["post"]["responses"]


def test_keys_are_shown_once_and_stored_as_sha256(client, sessions):
    r = client.post("/v1/keys", json={"name": "ci", "owner": "team-a"}, headers=ADMIN)
    assert r.status_code == 201
    created = r.json()
    key = created["key"]
    assert key.startswith("dfk_") and len(key) >= 40
    assert created["prefix"] == key[:12] and created["owner"] == "team-a"
    with sessions() as s:
        row = s.get(ApiKey, uuid.UUID(created["id"]))
        stored = [str(getattr(row, c.key)) for c in ApiKey.__table__.columns]
    assert row.sha256 == hashlib.sha256(key.encode()).hexdigest()
    assert not any(key in value for value in stored)
    listed = client.get("/v1/keys", headers=ADMIN).json()["items"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]


def test_owner_defaults_to_the_callers_and_names_are_checked(client):
    r = client.post("/v1/keys", json={"name": "mine"}, headers=ADMIN)
    assert r.json()["owner"] == "ops"
    for body, field in (
        ({"name": ""}, "name"),
        ({"name": "x", "owner": "a b"}, "owner"),
        ({"name": "x", "owner": "o" * 65}, "owner"),
        ({"name": "x", "admin": "yes please"}, "admin"),
        ({"name": "x", "scope": "all"}, "scope"),
    ):
        r = client.post("/v1/keys", json=body, headers=ADMIN)
        assert r.status_code == 422 and field in r.json()["message"], r.text


def test_only_admin_keys_manage_keys(client):
    user = new_key(client, "team-a")
    for method, path in (("GET", "/v1/keys"), ("POST", "/v1/keys")):
        r = client.request(method, path, headers=user, json={"name": "sneaky", "admin": True})
        assert r.status_code == 403 and "admin key" in r.json()["message"]
    admin = new_key(client, "team-b", admin=True)
    assert client.get("/v1/keys", headers=admin).status_code == 200


def test_a_revoked_key_is_refused_from_the_next_request(client):
    created = client.post("/v1/keys", json={"name": "a", "owner": "a"}, headers=ADMIN).json()
    key = bearer(created["key"])
    assert client.get("/v1/jobs", headers=key).status_code == 200
    first = client.delete(f"/v1/keys/{created['id']}", headers=ADMIN)
    assert first.status_code == 200 and first.json()["revoked_at"] is not None
    r = client.get("/v1/jobs", headers=key)
    assert r.status_code == 401 and "revoked" in r.json()["message"]
    again = client.delete(f"/v1/keys/{created['id']}", headers=ADMIN)
    assert again.json()["revoked_at"] == first.json()["revoked_at"]
    assert client.delete(f"/v1/keys/{uuid.uuid4()}", headers=ADMIN).status_code == 404


def _submit_everything(client, key) -> dict[str, str]:
    """A data set, a job on it and a batch on it, as `key`'s owner; their ids."""
    data = {"name": "pts", "x": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [0, 1, 1, 0]}
    dataset = client.post("/v1/datasets", json=data, headers=key).json()["id"]
    job_body = {**XOR_JOB, "dataset": {"id": dataset}}
    job = client.post("/v1/jobs", json=job_body, headers=key).json()["id"]
    batch_body = {"name": "grid", "base": job_body, "grid": {"epochs": [3, 4]}}
    batch = client.post("/v1/batches", json=batch_body, headers=key)
    assert batch.status_code == 201, batch.text
    return {"dataset": dataset, "job": job, "batch": batch.json()["id"]}


def test_another_owners_ids_answer_404_and_lists_are_ones_own(client):
    alice, bob = new_key(client, "alice"), new_key(client, "bob")
    ids = _submit_everything(client, alice)
    job, batch, dataset = ids["job"], ids["batch"], ids["dataset"]
    reads = [
        ("GET", f"/v1/jobs/{job}"),
        ("GET", f"/v1/jobs/{job}/epochs"),
        ("GET", f"/v1/jobs/{job}/snapshots"),
        ("GET", f"/v1/jobs/{job}/snapshots/0"),
        ("GET", f"/v1/jobs/{job}/trajectory?param=weight&layer=1&k=0&j=0"),
        ("GET", f"/v1/jobs/{job}/events"),
        ("POST", f"/v1/jobs/{job}/predict"),
        ("POST", f"/v1/jobs/{job}/fork"),
        ("GET", f"/v1/jobs/{job}/lineage"),
        ("POST", f"/v1/jobs/{job}/cancel"),
        ("DELETE", f"/v1/jobs/{job}"),
        ("GET", f"/v1/datasets/{dataset}"),
        ("GET", f"/v1/batches/{batch}"),
        ("POST", f"/v1/batches/{batch}/retry"),
    ]
    for method, path in reads:
        body = {} if path.endswith("/fork") else {"x": [[0, 1]]}
        r = client.request(method, path, headers=bob, json=body)
        assert r.status_code == 404, (method, path, r.text)
    for path in ("/v1/jobs", f"/v1/jobs?batch_id={batch}", "/v1/datasets", "/v1/batches"):
        assert client.get(path, headers=bob).json()["items"] == [], path
        assert client.get(path, headers=alice).json()["items"] != [], path
    assert client.get(f"/v1/jobs/{job}", headers=alice).json()["status"] == "queued"


def test_nobody_references_another_owners_dataset(client, sessions):
    alice, bob = new_key(client, "alice"), new_key(client, "bob")
    dataset = _submit_everything(client, alice)["dataset"]
    before = row_counts(sessions)
    job_body = {**XOR_JOB, "dataset": {"id": dataset}}
    r = client.post("/v1/jobs", json=job_body, headers=bob)
    assert r.status_code == 404 and dataset in r.json()["message"]
    r = client.post("/v1/batches", json={"name": "g", "base": job_body, "grid": {}}, headers=bob)
    assert r.status_code == 404 and dataset in r.json()["message"]
    own = client.post("/v1/jobs", json=XOR_JOB, headers=bob).json()["id"]
    before = row_counts(sessions)
    fork = {"epoch": 0, "overrides": {"dataset": dataset}}
    r = client.post(f"/v1/jobs/{own}/fork", json=fork, headers=bob)
    assert r.status_code == 404 and dataset in r.json()["message"]
    assert row_counts(sessions) == before


def test_idempotency_keys_belong_to_their_owner(client):
    alice, bob = new_key(client, "alice"), new_key(client, "bob")
    same = {"Idempotency-Key": "nightly-1"}
    a = client.post("/v1/jobs", json=XOR_JOB, headers=alice | same)
    b = client.post("/v1/jobs", json=XOR_JOB, headers=bob | same)
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]
    again = client.post("/v1/jobs", json=XOR_JOB, headers=alice | same)
    assert again.status_code == 200 and again.json()["id"] == a.json()["id"]


def test_an_admin_key_sees_only_its_own_owners_jobs(client):
    alice = new_key(client, "alice")
    client.post("/v1/jobs", json=XOR_JOB, headers=alice)
    assert client.get("/v1/jobs", headers=ADMIN).json()["items"] == []


def test_auth_off_is_the_local_user_and_docs_can_be_turned_off(migrated_sqlite_url, tmp_path):
    s = Settings(database_url=migrated_sqlite_url, home=tmp_path, docs="off")
    with TestClient(create_app(s)) as c:
        job = c.post("/v1/jobs", json=XOR_JOB)
        assert job.status_code == 201
        assert c.get("/v1/jobs").json()["items"][0]["id"] == job.json()["id"]
        assert c.post("/v1/keys", json={"name": "for later"}).status_code == 201
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert c.get(path).status_code == 404, path
    with TestClient(create_app(s.model_copy(update={"docs": "open"}))) as c:
        assert "securitySchemes" not in c.get("/openapi.json").json().get("components", {})
