"""Lineage: which job a fork continues, the history it shows, and the state it starts from.

A fork C of job P at epoch k continues P's state after epoch k (backprop/fork.py). C stores
only its own epochs, k+1 on; its history is P's epochs ≤ k followed by its own, read where they
are stored (never copied). P may itself be a fork, so a history is a list of segments — (job,
first epoch, last epoch) — down the chain of ancestors, each cut at the epoch its child forked.

The state after epoch k is rebuilt from the job that trained epoch k (the `source`: the first
ancestor, from the parent up, whose own epochs hold k; the root for epoch 0): its latest
checkpoint at or before k, or its initial state, then replayed to k (worker/forks.py). Every
checkpoint is kept (models/tables.py), so the replay is at most a checkpoint interval long.

Functions add statements to the caller's transaction; they never commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Integer, Row, Table, literal, select
from sqlalchemy.orm import Session

from models.tables import Checkpoint, Job

MAX_EPOCH = 2**31 - 1
_JOBS = cast(Table, Job.__table__)
_COLUMNS = ("id", "name", "status", "parent_id", "forked_at_epoch", "epochs_done")


@dataclass(frozen=True, slots=True)
class Segment:
    """Epochs first..last of a history, as stored under `job_id`."""

    job_id: uuid.UUID
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class ForkStart:
    """What a fork's first worker rebuilds the state after `epoch` from: the spec, data set and
    latest checkpoint at or before it (None: the spec's initial state) of the job that trained
    that epoch."""

    job_id: uuid.UUID
    spec: dict[str, Any]
    dataset_id: uuid.UUID
    checkpoint: Checkpoint | None
    epoch: int
    source_is_fork: bool  # then it has a checkpoint: its first flush wrote its starting state


def _chain(job_id: uuid.UUID, *, up: bool) -> Any:
    """A recursive CTE of the job and its ancestors (up) or descendants, with their depth."""
    c = _JOBS.c
    start = select(*(c[n] for n in _COLUMNS), literal(0, Integer).label("depth")).where(
        c.id == job_id
    )
    tree = start.cte("tree", recursive=True)
    link = c.id == tree.c.parent_id if up else c.parent_id == tree.c.id
    step = select(*(c[n] for n in _COLUMNS), (tree.c.depth + 1).label("depth")).where(link)
    return tree.union_all(step)


def ancestors(s: Session, job_id: uuid.UUID) -> list[Row]:
    """The job and its ancestors, nearest first: rows of id, name, status, parent_id,
    forked_at_epoch, epochs_done."""
    tree = _chain(job_id, up=True)
    return list(s.execute(select(tree).order_by(tree.c.depth)))


def descendants(s: Session, job_id: uuid.UUID) -> list[Row]:
    """The job's forks, their forks and so on, breadth-first (the job itself left out)."""
    tree = _chain(job_id, up=False)
    query = select(tree).where(tree.c.depth > 0).order_by(tree.c.depth, tree.c.id)
    return list(s.execute(query))


def segments(s: Session, job: Job, *, own: bool = False) -> list[Segment]:
    """The job's history as segments in epoch order: its ancestors' epochs up to where each
    child forked, then its own. `own`: its own epochs only."""
    if job.parent_id is None or own:
        first = 0 if job.forked_at_epoch is None else job.forked_at_epoch + 1
        return [Segment(job.id, first, MAX_EPOCH)]
    found, upper = [], MAX_EPOCH
    for row in ancestors(s, job.id):
        first = 0 if row.parent_id is None else row.forked_at_epoch + 1
        if first <= upper:
            found.append(Segment(row.id, first, upper))
        if row.parent_id is not None:
            upper = min(upper, row.forked_at_epoch)
    return found[::-1]


def fork_start(s: Session, parent_id: uuid.UUID, epoch: int) -> ForkStart:
    """Where the state after `epoch` of `parent_id`'s history is rebuilt from."""
    source = next(
        row for row in ancestors(s, parent_id)
        if row.parent_id is None or row.forked_at_epoch < epoch
    )  # fmt: skip
    spec, dataset_id = s.execute(select(Job.spec, Job.dataset_id).where(Job.id == source.id)).one()
    checkpoint = latest_checkpoint(s, source.id, epoch)
    return ForkStart(source.id, spec, dataset_id, checkpoint, epoch, source.parent_id is not None)


def latest_checkpoint(s: Session, job_id: uuid.UUID, epoch: int = MAX_EPOCH) -> Checkpoint | None:
    """The job's latest checkpoint at or before `epoch`, if it has one."""
    return s.scalars(
        select(Checkpoint)
        .where(Checkpoint.job_id == job_id, Checkpoint.epoch <= epoch)
        .order_by(Checkpoint.epoch.desc())
        .limit(1)
    ).first()


def children(s: Session, job_id: uuid.UUID) -> list[uuid.UUID]:
    """The forks made of this job (not their forks)."""
    return list(s.scalars(select(Job.id).where(Job.parent_id == job_id).order_by(Job.created_at)))
