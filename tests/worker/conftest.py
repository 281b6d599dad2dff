from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from models.base import utcnow
from models.tables import Job
from settings import Settings
from tests.factories import XOR_JOB, store_job

XOR = XOR_JOB | {"epochs": 60, "snapshot_every": 7}


@pytest.fixture
def settings(migrated_database_url) -> Settings:
    # Flush after every epoch, so short jobs exercise many flushes.
    return Settings(
        database_url=migrated_database_url, flush_interval=1e-6, lease_ttl=30, max_attempts=3
    )


@pytest.fixture
def make_job(sessions):
    """Store a job as the API would (without the HTTP layer), return its id."""

    def make(body: dict | None = None, spec_override: dict | None = None) -> uuid.UUID:
        return store_job(sessions, body or XOR, spec_override)

    return make


@pytest.fixture
def expire_lease(sessions):
    def expire(job_id: uuid.UUID) -> None:
        with sessions.begin() as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(lease_expires_at=utcnow() - timedelta(seconds=1))
            )

    return expire
