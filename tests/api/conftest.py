from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from settings import Settings
from tests.factories import XOR_JOB, row_counts, sessions_on
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
    runner = Runner(sessions, settings)
    assert runner.run(uuid.UUID(job["id"])) == "succeeded"
    # Flushes write the metrics row at most once a second; in a worker process the heartbeat
    # thread writes what they left (worker/metrics.py). This process has none: write it here.
    runner.metrics.save(sessions)
    return client.get(f"/v1/jobs/{job['id']}").json()


@pytest.fixture
def trained(client, sessions, settings):
    """`train` on this test's client and database."""
    return lambda body=None: train(client, sessions, settings, body)


@dataclass
class Shared:
    """An app and its database for a module's table of requests that each change nothing and
    check that, so the cases cannot disturb one another."""

    settings: Settings
    client: TestClient
    sessions: sessionmaker[Session]

    def counts(self) -> dict[str, int]:
        return row_counts(self.sessions)

    @cached_property
    def finished_job(self) -> dict:
        """A job trained to the end, for the cases whose path names one."""
        return train(self.client, self.sessions, self.settings)


@contextmanager
def shared_app(settings: Settings) -> Iterator[Shared]:
    with TestClient(create_app(settings)) as client, sessions_on(settings.database_url) as found:
        yield Shared(settings, client, found)


@pytest.fixture(scope="module")
def shared(databases, tmp_path_factory) -> Iterator[Shared]:
    """One app and migrated SQLite database for the module's table of rejected requests."""
    url = databases.sqlite(tmp_path_factory.mktemp("shared"))
    with shared_app(Settings(database_url=url, flush_interval=0.05)) as found:
        yield found
