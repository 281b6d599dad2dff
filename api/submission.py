"""Storing jobs and telling the workers: shared by single submissions and batch runs.

The job row is the outbox: rows are committed first, then published; a job whose publish
failed stays `queued` with no `published_at`, and the reaper publishes it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import Celery
from sqlalchemy import update
from sqlalchemy.orm import Session

from api.schemas import JobCreate
from backprop.spec import TrainSpec
from models import Job, JobTag, utcnow
from worker.celery_app import publish

log = logging.getLogger(__name__)


def add_job(
    session: Session,
    owner: str,
    body: JobCreate,
    spec: TrainSpec,
    dataset_id: uuid.UUID,
    *,
    name: str | None = None,
    batch_id: uuid.UUID | None = None,
    grid_point: dict[str, Any] | None = None,
) -> Job:
    """Add a queued job and its tags to the session (the caller commits)."""
    job = Job(
        id=uuid.uuid4(),
        owner=owner,
        name=name or body.name,
        tags=body.tags,
        spec=spec.model_dump(mode="json"),
        dataset_id=dataset_id,
        batch_id=batch_id,
        grid_point=grid_point,
        epochs_total=spec.epochs,
    )
    session.add(job)
    session.add_all(JobTag(job_id=job.id, key=k, value=v) for k, v in body.tags.items())
    return job


def publish_committed(session: Session, celery: Celery, job_ids: list[uuid.UUID]) -> None:
    """Publish jobs whose rows are committed, and record when; failures are left to the reaper."""
    published = []
    for job_id in job_ids:
        try:
            publish(celery, job_id)
            published.append(job_id)
        except Exception:
            log.exception("publishing job %s failed; the reaper will publish it", job_id)
            break  # the broker is down: the rest would fail the same way
    if published:
        with session.begin():
            session.execute(update(Job).where(Job.id.in_(published)).values(published_at=utcnow()))
