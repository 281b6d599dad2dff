from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from settings import Settings
from tests.factories import XOR_JOB, row_counts
from worker.runner import Runner


@pytest.fixture
def settings(migrated_sqlite_url) -> Settings:
    return Settings(database_url=migrated_sqlite_url, flush_interval=0.05)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def counts(sessions):
    """Rows per table, to show that a rejected request stored nothing."""
    return lambda: row_counts(sessions)


def train(client, sessions, settings, body: dict | None = None) -> dict:
    """Submit a job over HTTP, then train it with the worker's runner, in this process."""
    job = client.post("/v1/jobs", json=body or XOR_JOB).json()
    assert Runner(sessions, settings).run(uuid.UUID(job["id"])) == "succeeded"
    return client.get(f"/v1/jobs/{job['id']}").json()


@pytest.fixture
def trained(client, sessions, settings):
    """`train` on this test's client and database."""
    return lambda body=None: train(client, sessions, settings, body)
