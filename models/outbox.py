"""The job row is the outbox (DESIGN §5): `published_at` says a message for a queued job was sent,
or is being sent by the caller of the transaction that set it. What the reaper and the API do
with it — take the unpublished, take the stale, count what the broker should hold, forget a
publish that failed — is here; the status moves are models/lifecycle.py's. Functions never
commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from models.lifecycle import QUEUED, chunks
from models.tables import Job

# The job row is the outbox: `published_at` says a message for the job was sent (or is being
# sent, by the transaction's caller once it commits). Null means the job waits to be published:
# released, requeued, retried, or its publish failed.


def take_unpublished(s: Session, limit: int, now: datetime) -> list[uuid.UUID]:
    """The `limit` oldest queued jobs never published (or fewer), marked published at `now`:
    the caller publishes them once this commits, and calls `unpublish` for those it could not.
    RETURNING keeps no order, so neither does the list."""
    return _mark_published(s, Job.published_at.is_(None), Job.created_at, now, limit)


def take_stale(s: Session, limit: int, now: datetime, before: datetime) -> list[uuid.UUID]:
    """The `limit` queued jobs published longest ago, before `before` (or fewer), marked
    published at `now`, to be published again: the broker is first in, first out, so the
    messages it still holds are the newest, and the oldest are the ones it lost."""
    return _mark_published(s, Job.published_at < before, Job.published_at, now, limit)


def _mark_published(
    s: Session, which: ColumnElement[bool], oldest: Any, now: datetime, limit: int
) -> list[uuid.UUID]:
    chosen = select(Job.id).where(Job.status == QUEUED, which)
    chosen = chosen.order_by(oldest, Job.id).limit(limit)
    # The guard again on the UPDATE: a job claimed since the subquery read it, or taken by
    # another reaper (PostgreSQL re-checks the guard on the rows it waited for), is left alone.
    return list(
        s.scalars(
            update(Job)
            .where(Job.id.in_(chosen.scalar_subquery()), Job.status == QUEUED, which)
            .values(published_at=now)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        )
    )


def published_waiting(s: Session) -> int:
    """Queued jobs that were published: those the broker should hold a message for."""
    found = select(func.count()).where(Job.status == QUEUED, Job.published_at.is_not(None))
    return s.scalar(found) or 0


def unpublish(s: Session, job_ids: list[uuid.UUID]) -> None:
    """Forget the publish of queued jobs whose messages could not be sent, so that the reaper's
    next pass publishes them."""
    for chunk in chunks(job_ids):
        s.execute(
            update(Job)
            .where(Job.id.in_(chunk), Job.status == QUEUED)
            .values(published_at=None)
            .execution_options(synchronize_session=False)
        )
