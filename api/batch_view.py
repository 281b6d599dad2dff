"""GET /v1/batches/{id}: counts, the leaderboard, and for a scheduled batch its rung ladder,
its trials and the decision log (models/trials.py)."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas import BatchOut, Decided, LeaderRow, RungRow, TrialRow
from models.status import TERMINAL, JobStatus
from models.tables import Batch, Job
from models.trials import Decision, Rung
from tune import plans
from tune.schedulers import Scheduler, _Halving, _Scheduler

_SCHEDULER: TypeAdapter[Any] = TypeAdapter(Scheduler)
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


def batch_out(session: Session, batch: Batch) -> BatchOut:
    jobs = session.scalars(select(Job).where(Job.batch_id == batch.id)).all()
    cfg = _SCHEDULER.validate_python(batch.scheduler)
    rows = session.scalars(select(Rung).where(Rung.batch_id == batch.id)).all()
    log = session.scalars(
        select(Decision).where(Decision.batch_id == batch.id).order_by(Decision.id)
    ).all()
    counts = Counter(j.status for j in jobs)
    decided = [_decided(d) for d in log]
    return BatchOut(
        id=batch.id, name=batch.name, created_at=batch.created_at, base=batch.base,
        grid=batch.grid, space=batch.space, num_samples=batch.num_samples, seed=batch.seed,
        total=len(jobs), done=sum(counts[s] for s in TERMINAL), counts=dict(counts),
        leaderboard=leaderboard(jobs, rows, cfg), scheduler=batch.scheduler,
        epochs_trained=sum(j.epochs_done - (j.forked_at_epoch or 0) for j in jobs),
        rungs=ladder(jobs, rows, cfg), trials=_trials(jobs, rows, log), decisions=decided,
    )  # fmt: skip


def leaderboard(jobs: Any, rows: Any, cfg: _Scheduler) -> list[LeaderRow]:
    """Best first: by best loss for fifo; else by the metric at each trial's last rung (or its
    end), in the scheduler's mode, trials without a value last."""
    last: dict[uuid.UUID, Rung] = {}
    for r in rows:
        if r.job_id not in last or r.rung > last[r.job_id].rung:
            last[r.job_id] = r
    board = [
        LeaderRow(
            grid_point=j.grid_point, job_id=j.id, status=j.status, final_loss=j.final_loss,
            best_loss=j.best_loss, trial=j.trial,
            value=last[j.id].value if j.id in last else None,
            epoch=last[j.id].epoch if j.id in last else None,
        )
        for j in jobs
    ]  # fmt: skip
    if not cfg.adaptive:
        return sorted(board, key=lambda r: (r.best_loss is None, r.best_loss or 0.0, str(r.job_id)))
    records = [plans.Record(i, r.value) for i, r in enumerate(board)]
    return [board[r.trial] for r in plans.ranked(records, cfg.maximise)]


def ladder(jobs: Any, rows: Any, cfg: _Scheduler) -> list[RungRow]:
    """Every rung of every bracket (PBT's generations), and where its trials are."""
    if not cfg.adaptive or not jobs:
        return []
    max_epochs = jobs[0].epochs_total
    by_id = {j.id: j for j in jobs}
    out = []
    n_brackets = len(plans.brackets(cfg, max_epochs)) if isinstance(cfg, _Halving) else 1
    for b in range(n_brackets):
        for i, epoch in enumerate(plans.milestones(cfg, b, max_epochs)):
            here = [r for r in rows if r.bracket == b and r.rung == i]
            status = Counter(by_id[r.job_id].status for r in here if not r.promoted)
            heading = sum(
                1 for j in jobs
                if j.status in ACTIVE and j.stop_at == epoch
                and plans.bracket_of(cfg, j.trial or 0, max_epochs) == b
            )  # fmt: skip
            out.append(RungRow(
                bracket=b, rung=i, epoch=epoch, reached=len(here), heading=heading,
                paused=status[JobStatus.PAUSED], promoted=sum(r.promoted for r in here),
                stopped=status[JobStatus.STOPPED],
            ))  # fmt: skip
    return out


def _trials(jobs: Any, rows: Any, log: Any) -> list[TrialRow]:
    latest: dict[uuid.UUID, Decision] = {d.job_id: d for d in log}
    rung: dict[uuid.UUID, int] = {}
    for r in rows:
        rung[r.job_id] = max(rung.get(r.job_id, -1), r.rung)
    scheduled = sorted(
        (j for j in jobs if j.trial is not None), key=lambda j: (j.trial, j.created_at)
    )
    return [
        TrialRow(
            job_id=j.id, trial=j.trial, status=j.status, rung=rung.get(j.id),
            epochs_done=j.epochs_done, parent_id=j.parent_id, forked_at_epoch=j.forked_at_epoch,
            decision=_decided(latest[j.id]) if j.id in latest else None,
        )
        for j in scheduled
    ]  # fmt: skip


def _decided(d: Decision) -> Decided:
    return Decided(job_id=d.job_id, trial=d.trial, action=d.action, epoch=d.epoch, rung=d.rung,
                   detail=d.detail, actor=d.actor, at=d.at)  # fmt: skip
