from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from api.datasets import materialise, store
from api.schemas import JobCreate
from models.base import utcnow
from models.migrate import upgrade
from models.tables import Job
from settings import Settings
from tests.conftest import XOR_JOB

XOR = XOR_JOB | {"epochs": 60, "snapshot_every": 7}


@pytest.fixture
def settings(database_url) -> Settings:
    upgrade(database_url)
    # Flush after every epoch, so short jobs exercise many flushes.
    return Settings(database_url=database_url, flush_interval=1e-6, lease_ttl=30, max_attempts=3)


@pytest.fixture
def make_job(sessions):
    """Store a job as the API would (without the HTTP layer), return its id."""

    def make(body: dict | None = None, spec_override: dict | None = None) -> uuid.UUID:
        request = JobCreate.model_validate(body or XOR)
        spec = request.spec().model_dump(mode="json") | (spec_override or {})
        with sessions.begin() as s:
            dataset = store(s, "default", *materialise(request.dataset))
            job = Job(
                name=request.name, tags={}, spec=spec, dataset_id=dataset.id,
                epochs_total=spec["epochs"],
            )  # fmt: skip
            s.add(job)
        return job.id

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
