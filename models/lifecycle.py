"""The job lifecycle (DESIGN §5): every change of a job's status is one guarded UPDATE here.

    queued ──claim──► running ──succeed──► succeeded
      ▲ │                │ ├──────fail──► failed
      │ │                │ └────cancel──► cancelled   (the flag, seen at the worker's flush)
      │ └─request_cancel─┼──────────────► cancelled   (a queued job ends at once)
      ├──────release─────┤                            (a worker shutting down hands it back)
      ├─requeue_expired──┤  give_up ────► failed      (its lease expired: a worker died)
      └──retry── failed, cancelled                    (a batch's retry)

A trial of a scheduled batch also pauses at its rungs: running ──pause──► paused, and the
scheduler (models/trials.py) moves it on: paused → queued (promoted) or → stopped; a run the
scheduler ends itself (the median rule) goes running ──stop──► stopped.

Each guard is the state a transition starts from, so two actors racing on one job (a worker
and the reaper, a cancel and a claim) cannot both win: the loser's UPDATE matches no row, and
the function says so (None, False or 0 — or LeaseLost for a worker's fenced write); the
reaper's moves (give_up, requeue_expired) are one UPDATE for every job they apply to and
return the jobs they moved. A worker's transitions are also fenced by its lease: `lease_owner`
and `attempt` must still be the ones its claim wrote. Each claim gets a `job_attempts` row
(numbered 1, 2, … in claim order) saying when it started and ended, and why. Functions add
statements to the caller's session; they never commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    Integer,
    String,
    Table,
    Uuid,
    bindparam,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from models import lineage
from models.base import UtcDateTime, utcnow
from models.lineage import ForkStart
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
    fork: ForkStart | None = None  # for a fork's first run: where its starting state comes from
    batch_id: uuid.UUID | None = None
    trial: int | None = None  # its index in a scheduled batch
    stop_at: int | None = None  # the epoch to pause after (a rung), if it is a trial


class LeaseLost(Exception):
    """Another worker holds the job now (or it was cancelled or deleted): stop writing."""


# What a worker runs on every job and flush, built once with bound parameters: constructing
# the statements anew was a third of the worker's database time for a small job.
_JOBS = cast(Table, Job.__table__)
_ATTEMPTS = cast(Table, JobAttempt.__table__)
_c = _JOBS.c
_NOW = bindparam("now", type_=UtcDateTime())
_FENCE = (
    (_c.id == bindparam("job", type_=Uuid()))
    & (_c.lease_owner == bindparam("lease_id", type_=String()))
    & (_c.attempt == bindparam("fence_attempt", type_=Integer()))
    & (_c.status == RUNNING)
)
# The progress of a flush: None keeps what the row holds (a flush that stored no epoch).
_PROGRESS = {
    name: func.coalesce(bindparam(f"new_{name}", type_=_c[name].type), _c[name])
    for name in ("epochs_done", "latest_loss", "best_loss")
} | {"health": func.coalesce(bindparam("new_health", type_=JSON(none_as_null=True)), _c.health)}
_LEASE = {
    "lease_owner": bindparam("lease_id"),
    "lease_expires_at": bindparam("expires", type_=UtcDateTime()),
}
_CLAIMED = (
    _c.attempt, _c.spec, _c.dataset_id, _c.tags, _c.best_loss, _c.epochs_done, _c.parent_id,
    _c.forked_at_epoch, _c.batch_id, _c.trial, _c.stop_at,
)  # fmt: skip
_TAKE = (
    update(_JOBS)
    .where(_c.id == bindparam("job"))
    .values(
        status=RUNNING,
        attempt=_c.attempt + 1,
        started_at=func.coalesce(_c.started_at, _NOW),
        **_LEASE,
    )
    .returning(*_CLAIMED)
)
_TAKE_QUEUED = _TAKE.where(_c.status == QUEUED)
_TAKE_EXPIRED = _TAKE.where(
    _c.status == RUNNING, _c.lease_expires_at < _NOW, _c.attempt < bindparam("max_attempts")
)
_ATTEMPT_ROW = insert(_ATTEMPTS).from_select(
    ["job_id", "attempt", "worker", "blas_threads", "started_at", "start_epoch"],
    select(
        bindparam("job", type_=Uuid()), func.coalesce(func.max(_ATTEMPTS.c.attempt), 0) + 1,
        bindparam("lease_id", type_=String()), bindparam("threads", type_=Integer()), _NOW,
        bindparam("start", type_=Integer()),
    ).where(_ATTEMPTS.c.job_id == bindparam("job")),
).returning(_ATTEMPTS.c.attempt)  # fmt: skip
_RENEW = (
    update(_JOBS)
    .where(_FENCE)
    .values(lease_expires_at=bindparam("expires"), **_PROGRESS)
    .returning(_c.cancel_requested_at)
)
_DROP_LEASE = {"lease_owner": None, "lease_expires_at": None}
_END = (
    update(_JOBS)
    .where(_FENCE)
    .values(
        status=bindparam("new_status", type_=_c.status.type),
        error=bindparam("new_error", type_=_c.error.type),
        final_loss=bindparam("new_final_loss", type_=_c.final_loss.type),
        reason=bindparam("new_reason", type_=_c.reason.type),
        finished_at=_NOW, **_DROP_LEASE, **_PROGRESS,
    )
    .returning(_c.id)
)  # fmt: skip
_RELEASE = (
    update(_JOBS)
    .where(_FENCE)
    .values(status=QUEUED, attempt=_c.attempt - 1, published_at=None, **_DROP_LEASE, **_PROGRESS)
    .returning(_c.id)
)
# A pause hands the attempt back as a release does: a trial paused at five rungs has used none.
_PAUSE = (
    update(_JOBS)
    .where(_FENCE)
    .values(status=JobStatus.PAUSED, attempt=_c.attempt - 1, **_DROP_LEASE, **_PROGRESS)
    .returning(_c.id)
)
_CLOSE = (
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.job_id == bindparam("job", type_=Uuid()), _ATTEMPTS.c.ended_at.is_(None))
    .values(ended_at=_NOW, reason=bindparam("why", type_=String()))
)


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
    lease = {"job": job_id, "lease_id": owner, "expires": now + timedelta(seconds=ttl), "now": now}
    row = s.execute(_TAKE_QUEUED, lease).one_or_none()
    if row is None:
        row = s.execute(_TAKE_EXPIRED, lease | {"max_attempts": max_attempts}).one_or_none()
        if row is None:
            return None
        close_attempts(s, job_id, LEASE_EXPIRED, now)  # a holder that died before the reaper
    checkpoint = lineage.latest_checkpoint(s, job_id) if row.epochs_done else None
    fork = None
    if checkpoint is None and row.parent_id is not None:  # a fork that has not started yet
        fork = lineage.fork_start(s, row.parent_id, row.forked_at_epoch)
    start = checkpoint.epoch if checkpoint else row.forked_at_epoch or 0
    number = s.execute(
        _ATTEMPT_ROW, {"job": job_id, "lease_id": owner, "threads": blas_threads, "now": now,
                       "start": start},
    ).scalar_one()  # fmt: skip
    return Claim(Lease(job_id, owner, row.attempt, number), row.spec, row.dataset_id, row.tags,
                 row.best_loss, row.epochs_done, checkpoint, fork, row.batch_id, row.trial,
                 row.stop_at)  # fmt: skip


def _fenced(lease: Lease, progress: Progress, **more: Any) -> dict[str, Any]:
    """The parameters of a statement fenced by `lease` that records `progress`."""
    values = {f"new_{name}": progress.get(name) for name in _PROGRESS}
    fence = {"job": lease.job_id, "lease_id": lease.owner, "fence_attempt": lease.attempt}
    return fence | values | more


def renew(s: Session, lease: Lease, ttl: float, progress: Progress) -> bool:
    """running → running: extend the lease and record progress; True if cancellation was
    requested. LeaseLost if the lease is no longer this claim's."""
    expires = utcnow() + timedelta(seconds=ttl)
    row = s.execute(_RENEW, _fenced(lease, progress, expires=expires)).one_or_none()
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


def stop(
    s: Session, lease: Lease, reason: str, final_loss: float | None, progress: Progress
) -> None:
    """running → stopped: its batch's scheduler ended the run here, for `reason`."""
    _end(s, lease, JobStatus.STOPPED, progress, final_loss=final_loss, reason=reason)


def pause(s: Session, lease: Lease, progress: Progress) -> None:
    """running → paused at a rung: the lease dropped, the attempt handed back; its batch's
    scheduler moves it on (models/trials.py)."""
    if s.execute(_PAUSE, _fenced(lease, progress)).first() is None:
        raise LeaseLost(lease.job_id)
    close_attempts(s, lease.job_id, JobStatus.PAUSED, utcnow())


def _end(
    s: Session,
    lease: Lease,
    status: JobStatus,
    progress: Progress,
    *,
    error: str | None = None,
    final_loss: float | None = None,
    reason: str | None = None,
) -> None:
    now = utcnow()
    params = _fenced(lease, progress, new_status=status, new_error=error,
                     new_final_loss=final_loss, new_reason=reason, now=now)  # fmt: skip
    if s.execute(_END, params).first() is None:
        raise LeaseLost(lease.job_id)
    close_attempts(s, lease.job_id, error or status, now)


def release(s: Session, lease: Lease, progress: Progress) -> None:
    """running → queued, by a worker shutting down: unpublished, so that the reaper publishes
    it at its next pass, and the attempt handed back."""
    if s.execute(_RELEASE, _fenced(lease, progress)).first() is None:
        raise LeaseLost(lease.job_id)
    close_attempts(s, lease.job_id, RELEASED, utcnow())


def request_cancel(s: Session, job_id: uuid.UUID) -> bool:
    """queued or paused → cancelled at once; a running job is flagged for its worker (`cancel`).
    False if the job had ended. Asking again keeps the first request's time.

    Each UPDATE is guarded by the status it expects, so a job that changed since the caller
    read it is handled by the other: a worker may claim a queued job meanwhile (then it is
    flagged), and the reaper may requeue a running one whose lease expired (hence a second
    pass)."""
    now = utcnow()
    first = func.coalesce(Job.cancel_requested_at, now)
    stop = update(Job).where(Job.id == job_id, Job.status.in_((QUEUED, JobStatus.PAUSED)))
    stop = stop.values(status=JobStatus.CANCELLED, finished_at=now, cancel_requested_at=first)
    flag = update(Job).where(Job.id == job_id, Job.status == RUNNING)
    flag = flag.values(cancel_requested_at=first)
    for _ in range(2):
        for statement in (stop, flag):
            done = statement.returning(Job.id).execution_options(synchronize_session=False)
            if s.execute(done).first() is not None:
                return True
    return False


# The reaper's moves are set-based, so that a pass costs the same few statements whether one
# lease expired or a thousand, and a deep queue of jobs waiting their turn costs a count, not a
# transaction each.

CHUNK = 500  # ids per IN-list: far below any driver's limit on bound parameters


def give_up(s: Session, now: datetime, max_attempts: int) -> list[uuid.UUID]:
    """running → failed, for every job whose lease expired on its last attempt."""
    error = (
        f"gave up after {max_attempts} attempts: each time, the worker running it stopped "
        "renewing its lease (killed, out of memory, or cut off)"
    )
    values = {"status": JobStatus.FAILED, "error": error, "finished_at": now}
    return _leave_expired(s, now, Job.attempt >= max_attempts, values)


def requeue_expired(s: Session, now: datetime) -> list[uuid.UUID]:
    """running → queued, unpublished, for every job whose lease expired (the reaper publishes
    them); run after `give_up`, which takes those out of attempts."""
    return _leave_expired(s, now, true(), {"status": QUEUED, "published_at": None})


def _leave_expired(
    s: Session, now: datetime, guard: ColumnElement[bool], values: dict[str, Any]
) -> list[uuid.UUID]:
    """running → another status as `values` say, for every job whose lease expired and where
    `guard` holds: the lease is dropped and the open attempts closed. Returns the jobs moved."""
    expired = (Job.status == RUNNING) & (Job.lease_expires_at < now) & guard
    moved = list(
        s.scalars(
            update(Job)
            .where(expired)
            .values(lease_owner=None, lease_expires_at=None, **values)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        )
    )
    for chunk in chunks(moved):
        s.execute(
            update(JobAttempt)
            .where(JobAttempt.job_id.in_(chunk), JobAttempt.ended_at.is_(None))
            .values(ended_at=now, reason=LEASE_EXPIRED)
        )
    return moved


def chunks(ids: list[uuid.UUID]) -> list[list[uuid.UUID]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


def retry(s: Session, batch_id: uuid.UUID) -> list[uuid.UUID]:
    """failed or cancelled → queued, for every such job of a batch, with a fresh allowance of
    attempts; each resumes from its checkpoint. Returns the jobs requeued, marked published:
    the caller publishes them once this commits (and calls `unpublish` for those it could not)."""
    return list(
        s.scalars(
            update(Job)
            .where(Job.batch_id == batch_id, Job.status.in_(RETRIED))
            .values(
                status=QUEUED, error=None, attempt=0, cancel_requested_at=None,
                finished_at=None, published_at=utcnow(),
            )
            .returning(Job.id)
        )
    )  # fmt: skip


def close_attempts(s: Session, job_id: uuid.UUID, reason: str, now: datetime) -> None:
    """End the job's open attempt rows with `reason`."""
    s.execute(_CLOSE, {"job": job_id, "now": now, "why": reason[:200]})
