from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from models.migrate import upgrade
from models.tables import Dataset, Epoch, Job, Snapshot
from settings import Settings
from tests.conftest import XOR_JOB
from worker.celery_app import make_celery, prepare_broker
from worker.runner import Runner


@pytest.fixture
def settings(tmp_path) -> Settings:
    s = Settings(database_url=f"sqlite:///{tmp_path}/deltaflow.db", flush_interval=0.05)
    upgrade(s.database_url)
    prepare_broker(make_celery(s), s)
    return s


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def counts(sessions):
    """Rows per table, to show that a rejected request stored nothing."""

    def count() -> dict[str, int]:
        with sessions() as s:
            return {
                m.__tablename__: s.scalar(select(func.count()).select_from(m))
                for m in (Dataset, Job, Epoch, Snapshot)
            }

    return count


@pytest.fixture
def trained(client, sessions, settings):
    """Submit a job over HTTP, then train it with the worker's runner, in this process."""

    def train(body: dict | None = None) -> dict:
        job = client.post("/v1/jobs", json=body or XOR_JOB).json()
        assert Runner(sessions, settings).run(uuid.UUID(job["id"])) == "succeeded"
        return client.get(f"/v1/jobs/{job['id']}").json()

    return train
