"""Leases on jobs: claim, renew (fenced), finish, release — and the record of every attempt.

A lease is held by a lease id made fresh for each claim, so a fenced UPDATE (`lease_owner` and
`attempt` must still match) can only succeed for the claim that wrote them. `jobs.attempt`
counts claims that did not end in a graceful release: it is what `max_attempts` bounds, so a
job restarted by deploys is not failed as poison. Each claim also gets a `job_attempts` row
(numbered 1, 2, … in claim order) saying when it started and ended, and why.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.tables import Checkpoint, Job, JobAttempt


@dataclass(frozen=True)
class Lease:
    job_id: uuid.UUID
    owner: str  # this claim's lease id: "<worker>:<random>"
    attempt: int  # jobs.attempt after the claim, part of the fence
    number: int  # this claim's job_attempts row


class LeaseLost(Exception):
    """Another worker holds the job now (or it was cancelled or deleted): stop writing."""


def claim(
    s: Session, job_id: uuid.UUID, worker: str, ttl: float, max_attempts: int, blas_threads: int
) -> Lease | None:
    """Take the lease on a queued job, or on a running one whose lease expired while attempts
    remain (the reaper fails one that has none left). None if there is nothing to take."""
    now = utcnow()
    owner = f"{worker}:{uuid.uuid4().hex[:8]}"
    attempt = s.execute(
        update(Job)
        .where(
            Job.id == job_id,
            or_(
                Job.status == "queued",
                (Job.status == "running")
                & (Job.lease_expires_at < now)
                & (Job.attempt < max_attempts),
            ),
        )
        .values(
            status="running",
            attempt=Job.attempt + 1,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=ttl),
            started_at=func.coalesce(Job.started_at, now),
        )
        .returning(Job.attempt)
    ).scalar_one_or_none()
    if attempt is None:
        return None
    close_attempts(s, job_id, "lease expired", now)  # a holder that died before the reaper saw it
    number = 1 + (
        s.scalar(select(func.max(JobAttempt.attempt)).where(JobAttempt.job_id == job_id)) or 0
    )
    start = s.scalar(select(Checkpoint.epoch).where(Checkpoint.job_id == job_id)) or 0
    s.add(
        JobAttempt(
            job_id=job_id, attempt=number, worker=owner, blas_threads=blas_threads,
            started_at=now, start_epoch=start,
        )
    )  # fmt: skip
    return Lease(job_id, owner, attempt, number)


def _fence(lease: Lease):
    return (
        (Job.id == lease.job_id)
        & (Job.lease_owner == lease.owner)
        & (Job.attempt == lease.attempt)
        & (Job.status == "running")
    )


def renew(s: Session, lease: Lease, ttl: float, progress: dict[str, Any]) -> bool:
    """Extend the lease and record progress; True if cancellation was requested."""
    row = s.execute(
        update(Job)
        .where(_fence(lease))
        .values(lease_expires_at=utcnow() + timedelta(seconds=ttl), **progress)
        .returning(Job.cancel_requested_at)
    ).one_or_none()
    if row is None:
        raise LeaseLost(lease.job_id)
    return row.cancel_requested_at is not None


def finish(s: Session, lease: Lease, status: str, error: str | None, final_loss: float | None):
    """End the job (succeeded, failed or cancelled) and this attempt."""
    now = utcnow()
    s.execute(
        update(Job)
        .where(_fence(lease))
        .values(
            status=status, error=error, final_loss=final_loss, finished_at=now,
            lease_owner=None, lease_expires_at=None,
        )
    )  # fmt: skip
    close_attempts(s, lease.job_id, error or status, now)


def release(s: Session, lease: Lease) -> None:
    """Give the job back for another worker to continue: queued again, unpublished so that the
    reaper publishes it at its next pass, and the attempt handed back."""
    now = utcnow()
    s.execute(
        update(Job)
        .where(_fence(lease))
        .values(
            status="queued", attempt=Job.attempt - 1, lease_owner=None,
            lease_expires_at=None, published_at=None,
        )
    )  # fmt: skip
    close_attempts(s, lease.job_id, "released: the worker was shutting down", now)


def close_attempts(s: Session, job_id: uuid.UUID, reason: str, now: datetime) -> None:
    """End the job's open attempt rows with `reason`."""
    s.execute(
        update(JobAttempt)
        .where(JobAttempt.job_id == job_id, JobAttempt.ended_at.is_(None))
        .values(ended_at=now, reason=reason[:200])
    )
