"""The job lifecycle (DESIGN §5): every change of a job's status is one guarded UPDATE here.

    queued ──claim──► running ──succeed──► succeeded
      ▲ │                │ ├──────fail──► failed
      │ │                │ └────cancel──► cancelled   (the flag, seen at the worker's flush)
      │ └─request_cancel─┼──────────────► cancelled   (a queued job ends at once)
      ├──────release─────┤                            (a worker shutting down hands it back)
      ├─requeue_expired──┤  give_up ────► failed      (its lease expired: a worker died)
      └──retry── failed, cancelled                    (a batch's retry)

Each guard is the state a transition starts from, so two actors racing on one job (a worker
and the reaper, a cancel and a claim) cannot both win: the loser's UPDATE matches no row, and
the function says so (None, False or 0 — or LeaseLost for a worker's fenced write). A worker's
transitions are also fenced by its lease: `lease_owner` and `attempt` must still be the ones its
claim wrote. Each claim gets a `job_attempts` row (numbered 1, 2, … in claim order) saying when
it started and ended, and why. Functions add statements to the caller's session; they never
commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Uuid, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from models.base import UtcDateTime, utcnow
from models.status import JobStatus
from models.tables import Checkpoint, Job, JobAttempt

QUEUED, RUNNING = JobStatus.QUEUED, JobStatus.RUNNING
RETRIED = (JobStatus.FAILED, JobStatus.CANCELLED)  # what a batch's retry queues again

# Why an attempt ended while its job goes on (the `reason` of its job_attempts row); an attempt
# that ends its job has the job's status, or its error, as reason.
RELEASED = "released: the worker was shutting down"
LEASE_EXPIRED = "lease expired"
Progress = dict[str, Any]  # epochs_done, latest_loss, best_loss: what a flush wrote up to


@dataclass(frozen=True)
class Lease:
    job_id: uuid.UUID
    owner: str  # this claim's lease id: "<worker>:<random>"
    attempt: int  # jobs.attempt after the claim, part of the fence
    number: int  # this claim's job_attempts row


@dataclass(frozen=True)
class Claim:
    """A lease, and what a worker needs to start: read in the claim's own transaction."""

    lease: Lease
    spec: dict[str, Any]
    dataset_id: uuid.UUID
    tags: dict[str, str]
    best_loss: float | None
    epochs_done: int  # stored already: a worker writes only the epochs after it
    checkpoint: Checkpoint | None  # the state to resume from, if the job has trained before


class LeaseLost(Exception):
    """Another worker holds the job now (or it was cancelled or deleted): stop writing."""


def claim(
    s: Session, job_id: uuid.UUID, worker: str, ttl: float, max_attempts: int, blas_threads: int
) -> Claim | None:
    """queued → running, or running → running for a lease that expired while attempts remain
    (give_up ends one that has none left). None if there is nothing to take.

    `jobs.attempt` counts claims that did not end in a release: it is what `max_attempts`
    bounds, so a job restarted by deploys is not failed as poison. A queued job — the common
    case — costs two statements: the UPDATE that takes it, returning what the worker needs, and
    the INSERT of its attempt row, numbered in the same statement."""
    now = utcnow()
    owner = f"{worker}:{uuid.uuid4().hex[:8]}"
    row = _take(s, job_id, Job.status == QUEUED, owner, ttl, now)
    if row is None:
        expired = (Job.status == RUNNING) & (Job.lease_expires_at < now)
        row = _take(s, job_id, expired & (Job.attempt < max_attempts), owner, ttl, now)
        if row is None:
            return None
        close_attempts(s, job_id, LEASE_EXPIRED, now)  # a holder that died before the reaper
    checkpoint = s.get(Checkpoint, job_id) if row.epochs_done else None
    start = checkpoint.epoch if checkpoint else 0
    numbered = select(
        literal(job_id, Uuid()), func.coalesce(func.max(JobAttempt.attempt), 0) + 1,
        literal(owner), literal(blas_threads), literal(now, UtcDateTime()), literal(start),
    ).where(JobAttempt.job_id == job_id)  # fmt: skip
    columns = ["job_id", "attempt", "worker", "blas_threads", "started_at", "start_epoch"]
    number = s.execute(
        insert(JobAttempt).from_select(columns, numbered).returning(JobAttempt.attempt)
    ).scalar_one()
    lease = Lease(job_id, owner, row.attempt, number)
    return Claim(lease, row.spec, row.dataset_id, row.tags, row.best_loss, row.epochs_done,
                 checkpoint)  # fmt: skip


def _take(s: Session, job_id: uuid.UUID, guard: ColumnElement[bool], owner: str, ttl: float,
          now: datetime) -> Any:  # fmt: skip
    """→ running under a new lease where `guard` holds; the claimed columns, or None."""
    return s.execute(
        update(Job)
        .where(Job.id == job_id, guard)
        .values(
            status=RUNNING,
            attempt=Job.attempt + 1,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=ttl),
            started_at=func.coalesce(Job.started_at, now),
        )
        .returning(Job.attempt, Job.spec, Job.dataset_id, Job.tags, Job.best_loss, Job.epochs_done)
        .execution_options(synchronize_session=False)
    ).one_or_none()


def _fence(lease: Lease) -> ColumnElement[bool]:
    return (
        (Job.id == lease.job_id)
        & (Job.lease_owner == lease.owner)
        & (Job.attempt == lease.attempt)
        & (Job.status == RUNNING)
    )


def renew(s: Session, lease: Lease, ttl: float, progress: Progress) -> bool:
    """running → running: extend the lease and record progress; True if cancellation was
    requested. LeaseLost if the lease is no longer this claim's."""
    row = s.execute(
        update(Job)
        .where(_fence(lease))
        .values(lease_expires_at=utcnow() + timedelta(seconds=ttl), **progress)
        .returning(Job.cancel_requested_at)
    ).one_or_none()
    if row is None:
        raise LeaseLost(lease.job_id)
    return row.cancel_requested_at is not None


# A worker's last write ends its run in the UPDATE that fences it: the progress columns of its
# last flush (`progress`, as for `renew`) go with the new status, so that flush needs no renewal.


def succeed(s: Session, lease: Lease, final_loss: float | None, progress: Progress) -> None:
    """running → succeeded."""
    _end(s, lease, JobStatus.SUCCEEDED, progress, final_loss=final_loss)


def fail(s: Session, lease: Lease, error: str, progress: Progress) -> None:
    """running → failed, with the sentence that says why."""
    _end(s, lease, JobStatus.FAILED, progress, error=error)


def cancel(s: Session, lease: Lease, progress: Progress) -> None:
    """running → cancelled: the worker saw the cancellation flag at its flush."""
    _end(s, lease, JobStatus.CANCELLED, progress)


def _end(
    s: Session,
    lease: Lease,
    status: JobStatus,
    progress: Progress,
    *,
    error: str | None = None,
    final_loss: float | None = None,
) -> None:
    now = utcnow()
    values = {"status": status, "error": error, "final_loss": final_loss, "finished_at": now}
    values |= progress
    if not _leave_running(s, lease.job_id, _fence(lease), error or status, now, values):
        raise LeaseLost(lease.job_id)


def release(s: Session, lease: Lease, progress: Progress) -> None:
    """running → queued, by a worker shutting down: unpublished, so that the reaper publishes
    it at its next pass, and the attempt handed back."""
    values = {"status": QUEUED, "attempt": Job.attempt - 1, "published_at": None} | progress
    if not _leave_running(s, lease.job_id, _fence(lease), RELEASED, utcnow(), values):
        raise LeaseLost(lease.job_id)


def _leave_running(
    s: Session,
    job_id: uuid.UUID,
    guard: ColumnElement[bool],
    reason: str,
    now: datetime,
    values: dict[str, Any],
) -> bool:
    """running → another status as `values` say, where `guard` holds: the lease is dropped and
    the open attempt closed with `reason`. False if the guard matched no row."""
    moved = s.execute(
        update(Job)
        .where(guard)
        .values(lease_owner=None, lease_expires_at=None, **values)
        .returning(Job.id)
    ).first()
    if moved is not None:
        close_attempts(s, job_id, reason, now)
    return moved is not None


def request_cancel(s: Session, job_id: uuid.UUID) -> bool:
    """queued → cancelled at once; a running job is flagged for its worker (`cancel`). False if
    the job had ended. Asking again keeps the first request's time.

    Each UPDATE is guarded by the status it expects, so a job that changed since the caller
    read it is handled by the other: a worker may claim a queued job meanwhile (then it is
    flagged), and the reaper may requeue a running one whose lease expired (hence a second
    pass)."""
    now = utcnow()
    first = func.coalesce(Job.cancel_requested_at, now)
    stop = update(Job).where(Job.id == job_id, Job.status == QUEUED)
    stop = stop.values(status=JobStatus.CANCELLED, finished_at=now, cancel_requested_at=first)
    flag = update(Job).where(Job.id == job_id, Job.status == RUNNING)
    flag = flag.values(cancel_requested_at=first)
    for _ in range(2):
        for statement in (stop, flag):
            done = statement.returning(Job.id).execution_options(synchronize_session=False)
            if s.execute(done).first() is not None:
                return True
    return False


def expired_leases(s: Session, now: datetime) -> list[uuid.UUID]:
    """Running jobs whose lease expired: their worker died or was cut off."""
    found = select(Job.id).where(Job.status == RUNNING, Job.lease_expires_at < now)
    return list(s.scalars(found))


def give_up(s: Session, job_id: uuid.UUID, now: datetime, max_attempts: int) -> bool:
    """running → failed, for a job whose lease expired on its last attempt."""
    error = (
        f"gave up after {max_attempts} attempts: each time, the worker running it stopped "
        "renewing its lease (killed, out of memory, or cut off)"
    )
    values = {"status": JobStatus.FAILED, "error": error, "finished_at": now}
    last = _expired(job_id, now) & (Job.attempt >= max_attempts)
    return _leave_running(s, job_id, last, LEASE_EXPIRED, now, values)


def requeue_expired(s: Session, job_id: uuid.UUID, now: datetime) -> bool:
    """running → queued, unpublished, for a job whose lease expired (the reaper publishes it)."""
    values = {"status": QUEUED, "published_at": None}
    return _leave_running(s, job_id, _expired(job_id, now), LEASE_EXPIRED, now, values)


def _expired(job_id: uuid.UUID, now: datetime) -> ColumnElement[bool]:
    return (Job.id == job_id) & (Job.status == RUNNING) & (Job.lease_expires_at < now)


def unpublished(s: Session, stale: datetime) -> list[uuid.UUID]:
    """Queued jobs never published, or published before `stale` and still not claimed: the job
    row is the outbox, so a message lost between commit and publish is sent again."""
    found = select(Job.id).where(
        Job.status == QUEUED, or_(Job.published_at.is_(None), Job.published_at < stale)
    )
    return list(s.scalars(found))


def mark_published(s: Session, job_ids: list[uuid.UUID]) -> None:
    """Record that the workers were told about these jobs (`unpublished` finds them again if
    none claims them)."""
    s.execute(update(Job).where(Job.id.in_(job_ids)).values(published_at=utcnow()))


def retry(s: Session, batch_id: uuid.UUID) -> list[uuid.UUID]:
    """failed or cancelled → queued, for every such job of a batch, with a fresh allowance of
    attempts; each resumes from its checkpoint. Returns the jobs requeued."""
    return list(
        s.scalars(
            update(Job)
            .where(Job.batch_id == batch_id, Job.status.in_(RETRIED))
            .values(
                status=QUEUED, error=None, attempt=0, cancel_requested_at=None,
                finished_at=None, published_at=None,
            )
            .returning(Job.id)
        )
    )  # fmt: skip


def close_attempts(s: Session, job_id: uuid.UUID, reason: str, now: datetime) -> None:
    """End the job's open attempt rows with `reason`."""
    s.execute(
        update(JobAttempt)
        .where(JobAttempt.job_id == job_id, JobAttempt.ended_at.is_(None))
        .values(ended_at=now, reason=reason[:200])
    )
