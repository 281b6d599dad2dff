"""Claim a job, train it, and persist every epoch (DESIGN §5).

    claim ─► restore checkpoint or initialise ─► epochs … flush … flush ─► final flush

Epoch results are buffered and written in one transaction per flush interval: epoch rows
(insert-or-ignore), due snapshots, the checkpoint, the job's progress and this process's
metrics row (worker/metrics.py), behind the lease's fenced UPDATE (models/lifecycle.py). A fence
that matches no row means the lease was lost: the transaction rolls back and this worker stops.
A flush that fails because the database is unreachable is retried with backoff, the buffer
kept, until it succeeds or the lease is gone.
When the worker is asked to stop (`stopping`), it flushes, checkpoints and releases the job:
queued and unpublished, so the reaper's next pass publishes it for another worker — seconds,
not a lease timeout. (Publishing it from here would hand it back to this same worker, whose
consumer still runs while it shuts down.)
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import uuid
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from backprop import Diverged, Trainer, TrainSpec
from models import lifecycle
from models.bulk import dataset_arrays
from models.lifecycle import Lease, LeaseLost
from models.status import JobStatus
from models.tables import Checkpoint, Job
from settings import Settings
from worker.datacache import DataCache
from worker.logs import bind_attempt, job_context
from worker.metrics import Recorder, histogram
from worker.persist import FlushBuffer, load_checkpoint

log = logging.getLogger(__name__)
RETRYABLE = (OperationalError, InterfaceError, DisconnectionError)  # the database went away


def _fault_epoch(tags: dict[str, str]) -> int | None:
    """The epoch a `deltaflow.fault=kill:<epoch>` tag asks the worker to die at (tests only)."""
    kind, _, epoch = tags.get("deltaflow.fault", "").partition(":")
    return int(epoch) if kind == "kill" and epoch.isdigit() else None


class Outcome(StrEnum):
    """How a run left a job it did not end (it returns the job's status when it did)."""

    NOT_CLAIMED = "not claimed"  # another worker holds it, or it has ended
    LEASE_LOST = "lease lost"  # another worker took it over (or it was deleted)
    RELEASED = lifecycle.RELEASED  # handed back at shutdown, to be continued elsewhere


SUCCEEDED, FAILED, CANCELLED = JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED


class Runner:
    """Runs jobs for one worker process."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        self.metrics = Recorder("worker")
        self.identity = f"{self.metrics.hostname}:{self.metrics.pid}"
        self.datasets = DataCache(settings.data_cache_mb << 20)
        self.stopping = threading.Event()  # set on shutdown: release the job, don't finish it
        self._kill_at: int | None = None

    def run(self, job_id: uuid.UUID) -> JobStatus | Outcome | None:
        """Train `job_id` to the end if it can be claimed; return what became of it."""
        with job_context(job_id):
            lease = self.claim(job_id)
            if lease is None:
                log.info("job %s: nothing to claim (taken, or ended)", job_id)
                return Outcome.NOT_CLAIMED
            bind_attempt(lease.number)
            log.info("job %s: attempt %d claimed", job_id, lease.number)
            self.metrics.working = True
            try:
                outcome = self.run_claimed(lease)
            finally:
                self.metrics.working = False
            log.info("job %s: %s", job_id, outcome)
            return outcome

    def claim(self, job_id: uuid.UUID) -> Lease | None:
        s = self.settings
        with self.sessions.begin() as db:
            return lifecycle.claim(
                db, job_id, self.identity, s.lease_ttl, s.max_attempts, s.blas_threads
            )

    def run_claimed(self, lease: Lease) -> JobStatus | Outcome | None:
        """Train under a lease this runner took; stop quietly if it is lost."""
        try:
            return self._train(lease)
        except LeaseLost:
            log.warning("lease on job %s (attempt %d) was lost", lease.job_id, lease.attempt)
            return Outcome.LEASE_LOST

    def _load(self, lease: Lease) -> tuple[TrainSpec, float | None, Any, Any, dict | None]:
        """The job's spec, best loss so far, data and checkpoint; ValueError for a spec this
        version of the engine cannot read."""
        with self.sessions() as s:
            job = s.get_one(Job, lease.job_id)
            checkpoint = s.get(Checkpoint, lease.job_id)
            x, y = self.datasets.get(job.dataset_id, lambda: dataset_arrays(s, job.dataset_id))
            state = load_checkpoint(checkpoint) if checkpoint else None
            if self.settings.fault_hooks:
                self._kill_at = _fault_epoch(job.tags)
            return TrainSpec.model_validate(job.spec), job.best_loss, x, y, state

    def _train(self, lease: Lease) -> JobStatus | Outcome | None:
        try:
            spec, best, x, y, state = self._load(lease)
            trainer = Trainer.restore(spec, x, y, state) if state else Trainer(spec, x, y)
        except (ValueError, ValidationError) as exc:
            return self._flush(lease, FlushBuffer(1, None), FAILED, error=f"bad data: {exc}")
        buffer = FlushBuffer(spec.snapshot_every, best)
        if state is None:
            buffer.add_snapshot(0, trainer)
        interval = self.settings.flush_interval
        next_flush = time.monotonic() + interval
        try:
            for result in trainer.epochs():
                if result.epoch == self._kill_at:  # fault injection: die like an OOM kill
                    os.kill(os.getpid(), signal.SIGKILL)
                buffer.add(result, trainer)
                if self.stopping.is_set():
                    return self._flush(lease, buffer, Outcome.RELEASED, trainer=trainer)
                if time.monotonic() >= next_flush:
                    if self._flush(lease, buffer, trainer=trainer) is CANCELLED:
                        return CANCELLED
                    next_flush = time.monotonic() + interval
        except Diverged as exc:
            return self._flush(lease, buffer, FAILED, error=str(exc))
        buffer.add_snapshot(trainer.epoch, trainer)  # the last epoch is always kept
        return self._flush(lease, buffer, SUCCEEDED, trainer=trainer)

    def _flush(
        self,
        lease: Lease,
        buffer: FlushBuffer,
        end: JobStatus | Outcome | None = None,
        *,
        trainer: Trainer | None = None,
        error: str = "",
    ) -> JobStatus | Outcome | None:
        """Write the buffer (and `trainer`'s checkpoint), retrying while the database is
        unreachable, and end the job as `end` says: None (it goes on), SUCCEEDED, FAILED with
        `error`, or RELEASED. Returns how it ended: `end`, or CANCELLED if that was requested."""
        delay = 0.2
        while True:
            started = time.perf_counter()
            try:
                ended = self._write(lease, buffer, end, trainer, error)
            except RETRYABLE as exc:
                log.warning("flush of job %s failed (%s); retrying in %.1f s", lease.job_id,
                            type(getattr(exc, "orig", None) or exc).__name__, delay)  # fmt: skip
                self.metrics.add({"flush_retries": 1})
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            # Known only now that it committed: the next write of the row carries it.
            self.metrics.add({"flush_seconds": histogram([time.perf_counter() - started])})
            buffer.clear()
            return ended

    def _write(
        self,
        lease: Lease,
        buffer: FlushBuffer,
        end: JobStatus | Outcome | None,
        trainer: Trainer | None,
        error: str,
    ) -> JobStatus | Outcome | None:
        """One transaction: renew the lease (fenced), write the rows and the checkpoint, and
        end the job as `end` says — or cancel it, if that was requested and nothing ends it."""
        with self.metrics.lock:  # the heartbeat thread writes the same row
            with self.sessions.begin() as s:
                ttl = self.settings.lease_ttl
                if lifecycle.renew(s, lease, ttl, buffer.progress()) and end is None:
                    end = CANCELLED
                buffer.write(s, lease.job_id, trainer)
                if end is SUCCEEDED:
                    lifecycle.succeed(s, lease, buffer.last_loss)
                elif end is FAILED:
                    lifecycle.fail(s, lease, error)
                elif end is CANCELLED:
                    lifecycle.cancel(s, lease)
                elif end is Outcome.RELEASED:
                    lifecycle.release(s, lease)
                totals = self.metrics.write(s, buffer.metrics())
            self.metrics.written(totals)
        return end
