"""A scheduled batch's rung table and decision log, and the scheduler's moves of paused trials.

A rung row says trial T reached rung r (a PBT generation) of its bracket with the metric's value
there, and whether it was promoted from it; it is written in the same transaction as the
flush that paused the trial there. A decision row is one thing the scheduler did to one trial —
paused, promoted, stopped, cloned — at an epoch, by whom, and why: the batch endpoint shows the
log in order. Both are written under the batch's row lock (`lock`), so deciders never race.

The moves here start from `paused`, the one status no lease fences: paused → queued (promoted,
marked published: the decider publishes once it commits, and a crash in between is a message
the broker lacks, which the reaper's count makes up) and paused → stopped. Each is guarded by
the status, so a move made twice moves nothing the second time. Functions never commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    select,
    update,
)  # fmt: skip
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UtcDateTime, utcnow
from models.status import JobStatus
from models.tables import Batch, Job

PAUSED, QUEUED, STOPPED = JobStatus.PAUSED, JobStatus.QUEUED, JobStatus.STOPPED


class Rung(Base):
    """Trial `job_id` reached rung `rung` (epoch `epoch`) of bracket `bracket`."""

    __tablename__ = "rungs"
    __table_args__ = (Index("ix_rungs_batch_id_bracket_rung", "batch_id", "bracket", "rung"),)

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    rung: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("batches.id"))
    bracket: Mapped[int]
    trial: Mapped[int]
    epoch: Mapped[int]
    value: Mapped[float | None] = mapped_column(Float)
    promoted: Mapped[bool] = mapped_column(default=False)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Decision(Base):
    """One scheduler decision about one trial, numbered in the order it was made."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_batch_id_id", "batch_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),  # SQLite numbers INTEGER keys only
        primary_key=True,
        autoincrement=True,
    )
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("batches.id"))
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    trial: Mapped[int]
    action: Mapped[str] = mapped_column(String(16))  # paused, promoted, stopped, cloned
    epoch: Mapped[int]
    rung: Mapped[int | None]
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # reason, source, …
    actor: Mapped[str] = mapped_column(String(200))  # the worker (or "reaper") that decided
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


def lock(s: Session, batch_id: uuid.UUID) -> Batch:
    """The batch row, locked until the transaction ends (SELECT … FOR UPDATE on PostgreSQL;
    SQLite's BEGIN IMMEDIATE already holds the one write lock)."""
    return s.execute(select(Batch).where(Batch.id == batch_id).with_for_update()).scalar_one()


def promote(s: Session, job_id: uuid.UUID, stop_at: int | None, now: datetime) -> bool:
    """paused → queued, to pause next at `stop_at`; marked published at `now` (the caller
    publishes it after the commit). False if it was not paused."""
    moved = s.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == PAUSED)
        .values(status=QUEUED, stop_at=stop_at, published_at=now)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).first()
    return moved is not None


def stop(s: Session, job_id: uuid.UUID, reason: str, now: datetime) -> bool:
    """paused → stopped with `reason`. False if it was not paused."""
    moved = s.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == PAUSED)
        .values(status=STOPPED, reason=reason, stop_at=None, finished_at=now)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).first()
    return moved is not None


def stuck_batches(s: Session) -> list[uuid.UUID]:
    """Batches with paused trials and none queued or running: no worker will decide for them
    (a trial failed by the reaper, or cancelled while queued or paused), so the reaper does."""
    paused = Job.__table__.alias("p")
    active = select(Job.id).where(
        Job.batch_id == paused.c.batch_id, Job.status.in_((QUEUED, JobStatus.RUNNING))
    )
    found = select(paused.c.batch_id).where(paused.c.status == PAUSED, ~active.exists())
    return list(s.scalars(found.distinct()))
