"""Claim a job, train it, and persist every epoch (DESIGN §5).

    claim ─► restore checkpoint or initialise ─► epochs … flush … flush ─► final flush

Epoch results are buffered and written in one transaction per flush interval: one row of the
epochs since the last flush and the snapshots taken meanwhile (models/history.py), the job's
progress, a checkpoint every DELTAFLOW_CHECKPOINT_INTERVAL seconds and when the run ends, and
now and then this process's metrics row (worker/metrics.py), behind the lease's fenced UPDATE
(models/lifecycle.py). A fence that matches no row means the lease was lost: the transaction
rolls back and this worker stops. A job resumed from a checkpoint older than its stored
history replays the epochs in between — bit-identical, so they are not stored again — and
each epoch is stored exactly once.
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
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from backprop import Diverged, Trainer, TrainSpec
from models import lifecycle
from models.datasets import dataset_arrays
from models.lifecycle import Claim, Lease, LeaseLost
from models.status import JobStatus
from settings import Settings
from worker import forks, schedule
from worker.datacache import DataCache
from worker.logs import bind_attempt, job_context
from worker.metrics import Recorder, histogram
from worker.persist import FlushBuffer, checkpoint_values, load_checkpoint

log = logging.getLogger(__name__)
RETRYABLE = (OperationalError, InterfaceError, DisconnectionError)  # the database went away
T = TypeVar("T")


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
PAUSED, STOPPED = JobStatus.PAUSED, JobStatus.STOPPED
# Runs that end here keep their state: a checkpoint to continue from (a release, a pause at a
# rung, a batch's retry of a cancelled job) or to build on. A failed run's state is what failed.
KEEP_STATE = (SUCCEEDED, CANCELLED, PAUSED, STOPPED, Outcome.RELEASED)
METRICS_EVERY = 1.0  # seconds between writes of this process's metrics row by flushes


class Runner:
    """Runs jobs for one worker process."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        publish: Callable[[list[uuid.UUID]], object] | None = None,
    ) -> None:
        self.sessions = sessions
        # Sends the trials a scheduler decision queued; without it the reaper's count of what
        # the broker lacks publishes them (as after a crash between commit and publish).
        self.publish = publish
        self.settings = settings
        self.metrics = Recorder("worker")
        self.identity = f"{self.metrics.hostname}:{self.metrics.pid}"
        self.datasets = DataCache(settings.data_cache_mb << 20)
        self.stopping = threading.Event()  # set on shutdown: release the job, don't finish it
        self._kill_at: int | None = None
        self._checkpointed = 0.0  # time.monotonic() of this run's last checkpoint
        self._plan: schedule.Plan | None = None  # the claimed trial's schedule

    def run(self, job_id: uuid.UUID) -> JobStatus | Outcome | None:
        """Train `job_id` to the end if it can be claimed; return what became of it."""
        with job_context(job_id):
            claimed = self.claim(job_id)
            if claimed is None:
                log.info("job %s: nothing to claim (taken, or ended)", job_id)
                return Outcome.NOT_CLAIMED
            lease = claimed.lease
            bind_attempt(lease.number)
            log.info("job %s: attempt %d claimed", job_id, lease.number)
            self.metrics.working = True
            try:
                outcome = self.run_claimed(claimed)
            finally:
                self.metrics.working = False
            log.info("job %s: %s", job_id, outcome)
            return outcome

    def claim(self, job_id: uuid.UUID) -> Claim | None:
        """Claim the job, retrying while the database is unreachable: a message acked after a
        failed claim would leave the job to the reaper's next republish."""
        s = self.settings

        def claim() -> Claim | None:
            with self.sessions.begin() as db:
                claimed = lifecycle.claim(
                    db, job_id, self.identity, s.lease_ttl, s.max_attempts, s.blas_threads
                )
                self._plan = schedule.plan(db, claimed) if claimed else None
                return claimed

        return self._retrying("claim", job_id, claim)

    def _retrying(
        self, what: str, job_id: uuid.UUID, action: Callable[[], T], *, while_stopping: bool = False
    ) -> T:
        """`action()`, retried with backoff while the database is unreachable (connections are
        not pinged before use: a dead one fails here and is replaced). A stopping worker gives
        up, unless `while_stopping` (a flush that releases the job must get through)."""
        delay = 0.2
        while True:
            try:
                return action()
            except RETRYABLE as exc:
                if self.stopping.is_set() and not while_stopping:
                    raise
                log.warning("%s of job %s failed (%s); retrying in %.1f s", what, job_id,
                            type(getattr(exc, "orig", None) or exc).__name__, delay)  # fmt: skip
                if what == "flush":
                    self.metrics.add({"flush_retries": 1})
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def run_claimed(self, claimed: Claim) -> JobStatus | Outcome | None:
        """Train under a lease this runner took; stop quietly if it is lost."""
        try:
            return self._train(claimed)
        except LeaseLost:
            lease = claimed.lease
            log.warning("lease on job %s (attempt %d) was lost", lease.job_id, lease.attempt)
            return Outcome.LEASE_LOST

    def _trainer(self, claimed: Claim) -> Trainer:
        """The job's Trainer: restored from its checkpoint if it has one, started from its
        parent's state if it is a fork's first run; ValueError (or a ValidationError) for a spec
        or data this version of the engine cannot use."""
        spec = TrainSpec.model_validate(claimed.spec)
        x, y = self._cached_dataset(claimed.dataset_id)
        if self.settings.fault_hooks:
            self._kill_at = _fault_epoch(claimed.tags)
        if claimed.checkpoint is not None:
            return Trainer.restore(spec, x, y, load_checkpoint(claimed.checkpoint))
        if claimed.fork is not None:
            return forks.start(spec, x, y, claimed.fork, self._cached_dataset)
        return Trainer(spec, x, y)

    def _cached_dataset(self, dataset_id: uuid.UUID) -> tuple[Any, Any]:
        return self.datasets.get(dataset_id, lambda: self._dataset(dataset_id))

    def _dataset(self, dataset_id: uuid.UUID) -> tuple[Any, Any]:
        def read() -> tuple[Any, Any]:
            with self.sessions() as s:
                return dataset_arrays(s, dataset_id)

        return self._retrying("data set read", dataset_id, read)

    def _train(self, claimed: Claim) -> JobStatus | Outcome | None:
        lease = claimed.lease
        try:
            trainer = self._trainer(claimed)
        except (ValueError, ValidationError) as exc:
            return self._flush(lease, FlushBuffer(1, None), FAILED, error=f"bad data: {exc}")
        spec = trainer.spec
        buffer = FlushBuffer(spec.snapshot_every, claimed.best_loss, claimed.epochs_done)
        if claimed.fork is not None and claimed.checkpoint is None:
            buffer.keyframe = checkpoint_values(lease.job_id, trainer)
        elif claimed.checkpoint is None:
            buffer.add_snapshot(0, trainer)
        interval = self.settings.flush_interval
        next_flush = time.monotonic() + interval
        self._checkpointed = time.monotonic()
        try:
            for result in trainer.epochs():
                if result.epoch == self._kill_at:  # fault injection: die like an OOM kill
                    os.kill(os.getpid(), signal.SIGKILL)
                buffer.add(result, trainer)
                verdict = self._plan.verdict(result) if self._plan else None
                # A stop rule that fires at a rung's epoch stops the trial, not pauses it.
                if verdict is not None and trainer.stopped_by is None:
                    buffer.add_snapshot(trainer.epoch, trainer)  # the state it pauses or stops in
                    return self._flush(lease, buffer, verdict.status, trainer=trainer,
                                       error=verdict.reason or "")  # fmt: skip
                if self.stopping.is_set():
                    return self._flush(lease, buffer, Outcome.RELEASED, trainer=trainer)
                if time.monotonic() >= next_flush:  # while replaying too: it renews the lease
                    if self._flush(lease, buffer, trainer=trainer) is CANCELLED:
                        return CANCELLED
                    next_flush = time.monotonic() + interval
        except Diverged as exc:
            return self._flush(lease, buffer, FAILED, error=str(exc))
        buffer.add_snapshot(trainer.epoch, trainer)  # the last epoch is always kept
        if trainer.stopped_by is not None:  # a rule of stop_when fired at this epoch
            return self._flush(lease, buffer, STOPPED, trainer=trainer,
                               error=trainer.stopped_by.message)  # fmt: skip
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
        """Write the buffer (and `trainer`'s checkpoint when one is due), retrying while the
        database is unreachable, and end the job as `end` says: None (it goes on), SUCCEEDED,
        FAILED with `error`, or RELEASED. Returns how it ended: `end`, or CANCELLED if that
        was requested."""

        def write() -> JobStatus | Outcome | None:
            started = time.perf_counter()
            ended = self._write(lease, buffer, end, trainer, error)
            # Known only now that it committed: the next write of the row carries it.
            self.metrics.add({"flush_seconds": histogram([time.perf_counter() - started])})
            return ended

        ended = self._retrying("flush", lease.job_id, write, while_stopping=True)
        buffer.clear()
        if self._plan is not None and self._plan.watch is not None and end is None:
            with self.sessions() as s:
                schedule.refresh(s, self._plan, lease.job_id)
        return ended

    def _write(
        self,
        lease: Lease,
        buffer: FlushBuffer,
        end: JobStatus | Outcome | None,
        trainer: Trainer | None,
        error: str,
    ) -> JobStatus | Outcome | None:
        """One transaction: the fenced UPDATE of the job row (renewing the lease, or ending the
        job as `end` says — or cancelling it, if that was requested and nothing ends it), the
        epochs and snapshots, a checkpoint when one is due or the run ends here, and, at most
        once a second, this process's metrics row (counts not written wait for the next)."""
        with self.metrics.lock:  # the heartbeat thread writes the same row
            metrics = time.monotonic() - self.metrics.saved_at >= METRICS_EVERY
            queued: list[uuid.UUID] = []
            with self.sessions.begin() as s:
                if self._plan is not None and end is not None:
                    schedule.begin(s, self._plan)
                end = self._move(s, lease, buffer, end, error)
                due = time.monotonic() - self._checkpointed >= self.settings.checkpoint_interval
                keep = trainer if end in KEEP_STATE or (end is None and due) else None
                buffer.write(s, lease.job_id, keep)
                if self._plan is not None and end is not None and end is not Outcome.RELEASED:
                    epoch = trainer.epoch if trainer else buffer.stored
                    queued = schedule.on_end(s, self._plan, lease.job_id, JobStatus(end), epoch,
                                             self.identity, error or None)  # fmt: skip
                totals = self.metrics.write(s, buffer.metrics()) if metrics else None
            if queued and self.publish is not None:
                self.publish(queued)
            if keep is not None:
                self._checkpointed = time.monotonic()
            if totals is None:
                self.metrics.add(buffer.metrics())
            else:
                self.metrics.written(totals)
        return end

    def _move(
        self, s: Session, lease: Lease, buffer: FlushBuffer, end: JobStatus | Outcome | None,
        error: str,
    ) -> JobStatus | Outcome | None:  # fmt: skip
        """The fenced UPDATE of a flush; LeaseLost if this claim no longer holds the job."""
        progress = buffer.progress()
        if end is None:
            if not lifecycle.renew(s, lease, self.settings.lease_ttl, progress):
                return None
            end = CANCELLED
        if end is SUCCEEDED:
            lifecycle.succeed(s, lease, buffer.last_loss, progress)
        elif end is FAILED:
            lifecycle.fail(s, lease, error, progress)
        elif end is CANCELLED:
            lifecycle.cancel(s, lease, {})  # renewed with the progress just above
        elif end is Outcome.RELEASED:
            lifecycle.release(s, lease, progress)
        elif end is PAUSED:
            lifecycle.pause(s, lease, progress)
        elif end is STOPPED:
            lifecycle.stop(s, lease, error, buffer.last_loss, progress)
        return end
