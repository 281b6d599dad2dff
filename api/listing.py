"""Listing jobs: filters and keyset pagination in four orders.

A cursor holds the last row's sort key, so a page starts strictly after it: rows added while a
client pages never shift or repeat what it has seen. Jobs without a final loss sort last in
both loss orders, as their own segment after the finished ones.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any, Literal, get_args

from fastapi import HTTPException
from sqlalchemy import exists, or_, select, tuple_
from sqlalchemy.orm import Session

from api import pagination
from api.deps import get_owned
from api.errors import unprocessable
from models.status import JobStatus
from models.tables import Batch, Job, JobTag

Order = Literal["created_at", "-created_at", "final_loss", "-final_loss"]


def filters(
    owner: str,
    status: list[JobStatus] | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    batch_id: uuid.UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    parent_id: uuid.UUID | None = None,
    root_id: uuid.UUID | None = None,
) -> list[Any]:
    """WHERE clauses; tags are `key:value` and all must hold."""
    where = [Job.owner == owner]
    if status:
        where.append(Job.status.in_(status))
    if name:
        where.append(Job.name.startswith(name, autoescape=True))
    for tag in tags or []:
        key, _, value = tag.partition(":")
        where.append(
            exists().where(JobTag.job_id == Job.id, JobTag.key == key, JobTag.value == value)
        )
    if batch_id:
        where.append(Job.batch_id == batch_id)
    if parent_id:
        where.append(Job.parent_id == parent_id)
    if root_id:  # the whole tree: the root and every fork below it
        where.append(or_(Job.root_id == root_id, Job.id == root_id))
    if created_after:
        where.append(Job.created_at >= created_after)
    if created_before:
        where.append(Job.created_at < created_before)
    return where


def page(
    session: Session, where: list[Any], order: Order, limit: int, cursor: str | None
) -> tuple[list[Job], str | None]:
    """One page of jobs and the cursor of the next (None at the end)."""
    position = pagination.decode(cursor, _position) if cursor else None
    if position and position["order"] != order:
        raise unprocessable(["query", "cursor"], f"this cursor pages order_by={position['order']}")
    if order.endswith("created_at"):
        rows = _by_created(session, where, order, limit, position)
    else:
        rows = _by_loss(session, where, order, limit, position)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, pagination.encode(_key(rows[-1], order))


def _after(desc: bool):
    return (lambda a, b: a < b) if desc else (lambda a, b: a > b)


def _sort(column, desc: bool):
    return column.desc() if desc else column.asc()


def _by_created(session, where, order, limit, position) -> list[Job]:
    desc = order.startswith("-")
    query = select(Job).where(*where)
    if position:
        key = (position["value"], position["id"])
        query = query.where(_after(desc)(tuple_(Job.created_at, Job.id), key))
    query = query.order_by(_sort(Job.created_at, desc), _sort(Job.id, desc))
    return list(session.scalars(query.limit(limit + 1)))


def _by_loss(session, where, order, limit, position) -> list[Job]:
    desc, after = order.startswith("-"), _after(order.startswith("-"))
    rows: list[Job] = []
    if position is None or position["segment"] == 0:
        query = select(Job).where(*where, Job.final_loss.is_not(None))
        if position:
            key = (position["value"], position["id"])
            query = query.where(after(tuple_(Job.final_loss, Job.id), key))
        query = query.order_by(_sort(Job.final_loss, desc), _sort(Job.id, desc))
        rows = list(session.scalars(query.limit(limit + 1)))
    if len(rows) <= limit:
        query = select(Job).where(*where, Job.final_loss.is_(None))
        if position and position["segment"] == 1:
            query = query.where(after(Job.id, position["id"]))
        query = query.order_by(_sort(Job.id, desc)).limit(limit + 1 - len(rows))
        rows += list(session.scalars(query))
    return rows


def _key(job: Job, order: Order) -> dict[str, Any]:
    if order.endswith("created_at"):
        return {
            "order": order,
            "segment": 0,
            "value": job.created_at.isoformat(),
            "id": str(job.id),
        }
    segment = 0 if job.final_loss is not None else 1
    return {"order": order, "segment": segment, "value": job.final_loss, "id": str(job.id)}


def _position(value: Any) -> dict[str, Any]:
    """A job cursor with each field checked and parsed: they go into SQL as parameters, and a
    value of the wrong type would fail there rather than here."""
    if not isinstance(value, dict) or set(value) != {"order", "segment", "value", "id"}:
        raise ValueError("not a job cursor")
    order, segment, key = value["order"], value["segment"], value["value"]
    if order not in get_args(Order) or type(segment) is not int or segment not in (0, 1):
        raise ValueError("not a job cursor")
    if order.endswith("created_at"):
        if segment != 0:
            raise ValueError("jobs by created_at have one segment")
        key = pagination.moment(key)
    elif segment == 0:
        if type(key) not in (int, float) or not math.isfinite(key):
            raise ValueError("not a loss")
    elif key is not None:
        raise ValueError("a job without a final loss has no value")
    return {"order": order, "segment": segment, "value": key, "id": uuid.UUID(value["id"])}


def choose(
    session: Session, owner: str, ids: list[uuid.UUID] | None, batch: uuid.UUID | None,
    status: list[JobStatus] | None, tags: list[str] | None, most: int,
) -> list[Job]:  # fmt: skip
    """The caller's jobs the selectors choose (every one given must hold), oldest first, at
    most `most`; 404 naming an id or batch that is not one of the caller's, 422 when nothing
    selects or more than `most` jobs are selected."""
    if not (ids or batch or status or tags):
        raise unprocessable(["query", "job_id"], "choose the jobs: give job_id (repeatable), "
                            "batch, status or tag")  # fmt: skip
    if batch is not None:
        try:
            get_owned(session, Batch, batch, owner)
        except HTTPException:
            raise HTTPException(404, detail=f"batch: batch {batch} not found") from None
    where = filters(owner, status, None, tags, batch)
    if ids:
        owned = set(session.scalars(select(Job.id).where(Job.owner == owner, Job.id.in_(ids))))
        missing = [i for i in ids if i not in owned]
        if missing:
            raise HTTPException(404, detail=f"job_id: job {missing[0]} not found")
        where.append(Job.id.in_(ids))
    query = select(Job).where(*where).order_by(Job.created_at, Job.id).limit(most + 1)
    jobs = list(session.scalars(query))
    if len(jobs) > most:
        raise unprocessable(["query", "batch" if batch else "status"], f"selects more than "
                            f"{most:,} jobs; narrow it with status, tag or batch")  # fmt: skip
    return jobs
