"""Claim a job, train it, and persist every epoch (DESIGN §5).

    claim ─► restore checkpoint or initialise ─► epochs … flush … flush ─► final flush

The claim is one conditional UPDATE that takes a lease and increments `attempt`, the fencing
token. Epoch results are buffered and written in one transaction per flush interval: epoch
rows (insert-or-ignore), due snapshots, the checkpoint and the job's progress, behind an
UPDATE guarded by lease owner and attempt. A guard that matches no row means the lease was
lost to another worker: the transaction is rolled back and this worker stops.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from pydantic import ValidationError
from sqlalchemy import or_, update
from sqlalchemy.orm import Session, sessionmaker

from backprop import Diverged, Trainer, TrainSpec
from models import Checkpoint, Job, utcnow
from models.bulk import dataset_arrays
from settings import Settings
from worker.datacache import DataCache
from worker.persist import FlushBuffer, load_checkpoint

log = logging.getLogger(__name__)


def worker_identity() -> str:
    """Who holds a lease: host, process and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Lease:
    job_id: uuid.UUID
    owner: str
    attempt: int


class LeaseLost(Exception):
    """Another worker holds the job now; nothing more may be written."""


class Runner:
    """Runs jobs for one worker process."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        self.identity = worker_identity()
        self.datasets = DataCache(settings.data_cache_mb << 20)

    def run(self, job_id: uuid.UUID) -> str:
        """Train `job_id` to the end if it can be claimed; return what became of it."""
        lease = self.claim(job_id)
        return "not claimed" if lease is None else self.run_claimed(lease)

    def run_claimed(self, lease: Lease) -> str:
        """Train under a lease this runner took; stop quietly if it is lost."""
        try:
            return self._train(lease)
        except LeaseLost:
            log.warning("lease on job %s (attempt %d) was lost", lease.job_id, lease.attempt)
            return "lease lost"

    def claim(self, job_id: uuid.UUID) -> Lease | None:
        """Take the lease on a queued job, or on a running one whose lease expired."""
        now = utcnow()
        with self.sessions.begin() as s:
            attempt = s.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    or_(
                        Job.status == "queued",
                        (Job.status == "running") & (Job.lease_expires_at < now),
                    ),
                )
                .values(
                    status="running",
                    attempt=Job.attempt + 1,
                    lease_owner=self.identity,
                    lease_expires_at=now + timedelta(seconds=self.settings.lease_ttl),
                    started_at=now,
                )
                .returning(Job.attempt)
            ).scalar_one_or_none()
        return None if attempt is None else Lease(job_id, self.identity, attempt)

    def _train(self, lease: Lease) -> str:
        with self.sessions() as s:
            job = s.get_one(Job, lease.job_id)
            checkpoint = s.get(Checkpoint, lease.job_id)
            spec_json, best = job.spec, job.best_loss
            x, y = self.datasets.get(job.dataset_id, lambda: dataset_arrays(s, job.dataset_id))
            state = load_checkpoint(checkpoint) if checkpoint else None
        try:
            spec = TrainSpec.model_validate(spec_json)
            trainer = Trainer.restore(spec, x, y, state) if state else Trainer(spec, x, y)
        except (ValueError, ValidationError) as exc:
            failed = FlushBuffer(spec_json, best)
            self._flush(lease, failed, status="failed", error=f"bad data: {exc}")
            return "failed"
        buffer = FlushBuffer(spec_json, best)
        if state is None:
            buffer.add_snapshot(0, trainer)
        interval = self.settings.flush_interval
        next_flush = time.monotonic() + interval
        try:
            for result in trainer.epochs():
                buffer.add(result, trainer)
                if time.monotonic() >= next_flush:
                    if self._flush(lease, buffer, trainer=trainer) == "cancelled":
                        return "cancelled"
                    next_flush = time.monotonic() + interval
        except Diverged as exc:
            self._flush(lease, buffer, status="failed", error=str(exc))
            return "failed"
        buffer.add_snapshot(trainer.epoch, trainer)  # the last epoch is always kept
        self._flush(lease, buffer, trainer=trainer, status="succeeded")
        return "succeeded"

    def _flush(
        self,
        lease: Lease,
        buffer: FlushBuffer,
        *,
        trainer: Trainer | None = None,
        status: str | None = None,
        error: str | None = None,
    ) -> str:
        """Write the buffer in one transaction; finish the job when `status` is given, or when
        a cancellation was requested. Raises LeaseLost if the guard matches no row."""
        now = utcnow()
        with self.sessions.begin() as s:
            cancel_requested = self._extend_lease(s, lease, buffer, now)
            buffer.write(s, lease.job_id, trainer)
            if status is None and cancel_requested:
                status = "cancelled"
            if status is not None:
                s.execute(
                    update(Job)
                    .where(Job.id == lease.job_id)
                    .values(
                        status=status,
                        error=error,
                        final_loss=buffer.last_loss if status == "succeeded" else None,
                        finished_at=utcnow(),  # after the rows: the job's wall time counts them
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                )
        buffer.clear()
        return status or "running"

    def _extend_lease(self, s: Session, lease: Lease, buffer: FlushBuffer, now) -> bool:
        """The fenced progress update; returns whether cancellation was requested."""
        row = s.execute(
            update(Job)
            .where(
                Job.id == lease.job_id,
                Job.lease_owner == lease.owner,
                Job.attempt == lease.attempt,
                Job.status == "running",
            )
            .values(
                lease_expires_at=now + timedelta(seconds=self.settings.lease_ttl),
                **buffer.progress(),
            )
            .returning(Job.cancel_requested_at)
        ).one_or_none()
        if row is None:
            raise LeaseLost(lease.job_id)
        return row.cancel_requested_at is not None
