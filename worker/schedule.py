"""A trial's side of its batch's scheduler (tune/): when its run pauses or stops, and what it
records there.

A trial's run pauses at its `stop_at` epoch (a rung, a PBT generation), or the median rule stops
it. Either way the run ends in one flush transaction that first locks the batch row, then
writes the fenced status change, the epochs and the checkpoint, the rung row and the decision,
and finally settles the batch (worker/settle.py): every decision a rung's new record makes
possible is made before the commit, so a crash loses none of them and none is made twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session

from backprop import EpochResult
from models import history, trials
from models.lifecycle import Claim
from models.status import JobStatus
from models.tables import Batch, Job
from models.trials import Decision, Rung
from tune import plans
from tune.schedulers import Median, Scheduler, _Scheduler
from worker import settle

SCHEDULER: TypeAdapter[Any] = TypeAdapter(Scheduler)
PAUSED, STOPPED = JobStatus.PAUSED, JobStatus.STOPPED


@dataclass(frozen=True)
class Verdict:
    """How the scheduler ends this run: paused at a rung, or stopped with a reason."""

    status: JobStatus
    epoch: int
    reason: str | None = None


@dataclass
class MedianWatch:
    """What the median rule compares a trial with: its best value so far, and the cumulative
    sums of the other trials' values (their running average at t is cumsum[t-1] / t)."""

    cfg: Median
    best: float | None = None
    others: list[np.ndarray] = field(default_factory=list)

    def see(self, value: float | None) -> None:
        if value is not None and (self.best is None or self._better(value, self.best)):
            self.best = value

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.cfg.maximise else a < b

    def verdict(self, t: int) -> str | None:
        if t < self.cfg.grace_period or self.best is None:
            return None
        means = [float(c[t - 1]) / t for c in self.others if c.size >= t]
        stop, median = plans.median_stops(self.best, means, self.cfg)
        if not stop:
            return None
        return (
            f"median rule at epoch {t}: best {self.cfg.metric} {self.best:.6g} is worse than "
            f"{median:.6g}, the median running average of {len(means)} other trials"
        )


@dataclass
class Plan:
    """A trial's schedule, read at its claim."""

    batch_id: uuid.UUID
    cfg: _Scheduler
    trial: int
    bracket: int
    stop_at: int | None
    stored: int  # epochs stored before this run: replayed ones decide nothing
    max_epochs: int
    watch: MedianWatch | None = None
    value: float | None = None  # the metric at the latest epoch

    def verdict(self, r: EpochResult) -> Verdict | None:
        """Whether the run ends after epoch `r` (and how), given its result."""
        self.value = getattr(r, self.cfg.metric)
        if self.watch is not None:
            self.watch.see(self.value)
        if r.epoch <= self.stored:
            return None
        if r.epoch == self.stop_at:
            return Verdict(PAUSED, r.epoch)
        if self.watch is not None and (reason := self.watch.verdict(r.epoch)) is not None:
            return Verdict(STOPPED, r.epoch, reason)
        return None


def plan(s: Session, claimed: Claim) -> Plan | None:
    """The claimed job's schedule, if it is a trial of a batch with a scheduler."""
    if claimed.batch_id is None or claimed.trial is None:
        return None
    stored = s.scalar(select(Batch.scheduler).where(Batch.id == claimed.batch_id))
    cfg = SCHEDULER.validate_python(stored)
    if not cfg.adaptive:
        return None
    bracket = plans.bracket_of(cfg, claimed.trial, claimed.spec["epochs"])
    found = Plan(claimed.batch_id, cfg, claimed.trial, bracket, claimed.stop_at,
                 claimed.epochs_done, claimed.spec["epochs"])  # fmt: skip
    if isinstance(cfg, Median):
        found.watch = MedianWatch(cfg)
        refresh(s, found, claimed.lease.job_id, own=claimed.epochs_done)
    return found


def refresh(s: Session, p: Plan, job_id: uuid.UUID, own: int = 0) -> None:
    """Read the other trials' values again (and, given `own` epochs, this trial's best)."""
    watch = p.watch
    if watch is None:
        return
    metric = p.cfg.metric
    if own:
        values = history.epoch_columns(s, job_id, [metric], 0, last=own)[metric]
        for v in values[np.isfinite(values)]:
            watch.see(float(v))
    others = s.scalars(
        select(Job.id).where(
            Job.batch_id == p.batch_id, Job.id != job_id,
            Job.epochs_done >= watch.cfg.grace_period,
        )
    )  # fmt: skip
    watch.others = [
        np.cumsum(history.epoch_columns(s, other, [metric], 0)[metric]) for other in others
    ]


def begin(s: Session, p: Plan) -> None:
    """Lock the batch first in a transaction that ends a trial's run (worker/settle.py)."""
    trials.lock(s, p.batch_id)


def on_end(
    s: Session, p: Plan, job_id: uuid.UUID, end: JobStatus, epoch: int, actor: str,
    reason: str | None = None,
) -> list[uuid.UUID]:  # fmt: skip
    """Record how a trial's run ended at `epoch` — its rung, or its final value — and settle
    the batch; returns the trials to publish once this commits."""
    batch = trials.lock(s, p.batch_id)
    milestones = plans.milestones(p.cfg, p.bracket, p.max_epochs)
    if end is PAUSED:
        rung = milestones.index(epoch)
        _record(s, p, job_id, rung, epoch)
        _decide(s, p, job_id, "paused", epoch, rung, actor, value=p.value)
    elif end in (JobStatus.SUCCEEDED, STOPPED):
        _record(s, p, job_id, len(milestones), epoch)  # its final value, for the leaderboard
        if end is STOPPED:
            _decide(s, p, job_id, "stopped", epoch, None, actor, reason=reason)
    s.flush()
    return settle.settle(s, batch, SCHEDULER.validate_python(batch.scheduler), actor)


def _record(s: Session, p: Plan, job_id: uuid.UUID, rung: int, epoch: int) -> None:
    s.add(Rung(job_id=job_id, rung=rung, batch_id=p.batch_id, bracket=p.bracket,
               trial=p.trial, epoch=epoch, value=p.value))  # fmt: skip


def _decide(
    s: Session, p: Plan, job_id: uuid.UUID, action: str, epoch: int, rung: int | None,
    actor: str, **detail: Any,
) -> None:  # fmt: skip
    s.add(Decision(batch_id=p.batch_id, job_id=job_id, trial=p.trial, action=action,
                   epoch=epoch, rung=rung, detail=detail, actor=actor))  # fmt: skip


def settle_stuck(s: Session, batch_id: uuid.UUID, actor: str = "reaper") -> list[uuid.UUID]:
    """Settle a batch no running trial will settle (models.trials.stuck_batches): a trial the
    reaper failed, or one cancelled while queued or paused, may have closed a rung."""
    batch = trials.lock(s, batch_id)
    return settle.settle(s, batch, SCHEDULER.validate_python(batch.scheduler), actor)
