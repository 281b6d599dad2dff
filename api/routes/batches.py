"""/v1/batches: queued batch runs over a grid of settings, their progress and leaderboard."""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from api import batches, datasets, limits, pagination, submission
from api.deps import CeleryDep, OwnerDep, SessionDep, SettingsDep
from api.schemas import (
    BatchCreate,
    BatchCreated,
    BatchOut,
    BatchSummary,
    JobCreate,
    Page,
    Retried,
)
from models import TERMINAL_STATUSES, Batch, Job
from settings import Settings

router = APIRouter(prefix="/v1/batches", tags=["batches"])
BatchId = Annotated[uuid.UUID, Path(description="The batch's id.")]


@router.post(
    "",
    status_code=201,
    response_model=BatchCreated,
    responses=submission.idempotent_responses(BatchCreated, "the batch, with its jobs,"),
)
def create_batch(
    body: BatchCreate,
    response: Response,
    session: SessionDep,
    celery: CeleryDep,
    owner: OwnerDep,
    settings: SettingsDep,
    idempotency_key: submission.IdempotencyKey = None,
):
    """Validate every grid point against the spec and the data, store the batch and its jobs,
    then publish them."""
    base = _base(body.base)
    digest = None
    if idempotency_key:
        # The base is digested as the job body it parses to, as POST /v1/jobs does.
        request = body.model_dump(mode="json") | {"base": base.model_dump(mode="json")}
        digest = submission.request_digest(request)
    batch, created = submission.create_once(
        session,
        Batch,
        owner,
        idempotency_key,
        digest,
        lambda: _store(session, owner, body, base, settings, idempotency_key, digest),
    )
    with session.begin():
        job_ids = _job_ids(session, batch)
    if created:
        submission.publish_committed(session, celery, job_ids, drop=settings.fault_drop_publish)
    else:
        response.status_code = 200
    response.headers["Location"] = f"/v1/batches/{batch.id}"
    return BatchCreated(
        id=batch.id,
        name=batch.name,
        created_at=batch.created_at,
        size=math.prod(len(values) for values in batch.grid.values()),
        job_ids=job_ids,
    )


def _store(
    session: Session,
    owner: str,
    body: BatchCreate,
    base: JobCreate,
    settings: Settings,
    key: str | None,
    digest: str | None,
) -> Batch:
    """Check every grid point against the spec and the data, then add the batch and its jobs
    (and a new data set); no commit."""
    batches.check_grid(body.grid, settings.max_grid_points)
    points = batches.points(body.grid)
    bodies = [batches.job_body(body.base, p) for p in points]
    dataset, name, x, y = datasets.load(session, owner, base.dataset)
    specs = [b.spec() for b in bodies]
    for spec, point in zip(specs, points, strict=True):
        limits.check(spec, x, settings, ["grid"])
        batches.check_data(spec, point, x, y)
    dataset = dataset or datasets.store(session, owner, name, x, y)
    batch = Batch(
        id=uuid.uuid4(),
        owner=owner,
        name=body.name,
        base=body.base,
        grid=body.grid,
        idempotency_key=key,
        request_sha256=digest,
    )
    session.add(batch)
    session.flush()  # the batch row exists before jobs reference it
    for b, spec, point in zip(bodies, specs, points, strict=True):
        job_name = _job_name(b.name, point)
        submission.add_job(
            session, owner, b, spec, dataset.id, name=job_name, batch_id=batch.id, grid_point=point
        )
    return batch


def _job_ids(session: Session, batch: Batch) -> list[uuid.UUID]:
    """The batch's jobs in the order of its grid points, the same in the first answer and in
    a repeat's. A job is placed by its grid_point; jobs of equal points (a value listed twice)
    are interchangeable and keep (created_at, id) order; a job deleted since is left out."""
    position: dict[str, int] = {}
    for i, point in enumerate(batches.points(batch.grid)):
        position.setdefault(_canonical(point), i)
    rows = session.execute(
        select(Job.id, Job.grid_point)
        .where(Job.batch_id == batch.id)
        .order_by(Job.created_at, Job.id)
    ).all()
    rows.sort(key=lambda row: position.get(_canonical(row.grid_point), len(position)))
    return [row.id for row in rows]


def _canonical(point: dict | None) -> str:
    return json.dumps(point, sort_keys=True)


def _base(raw: dict) -> JobCreate:
    try:
        return JobCreate.model_validate(raw)
    except ValidationError as exc:
        errors = [e | {"loc": ("body", "base", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


def _job_name(name: str, point: dict) -> str:
    label = ", ".join(f"{path}={value}" for path, value in point.items())
    return f"{name} [{label}]"[:200] if label else name


@router.get("", response_model=Page[BatchSummary])
def list_batches(
    session: SessionDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
):
    """Batches, newest first."""
    query = select(Batch).where(Batch.owner == owner)
    if cursor:
        at, batch_id = pagination.decode(cursor, _position)
        query = query.where(tuple_(Batch.created_at, Batch.id) < (at, batch_id))
    query = query.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit + 1)
    items = list(session.scalars(query))
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        next_cursor = pagination.encode([items[-1].created_at.isoformat(), str(items[-1].id)])
    return {"items": items, "next_cursor": next_cursor}


def _position(value) -> tuple[datetime, uuid.UUID]:
    at, batch_id = value
    return datetime.fromisoformat(at), uuid.UUID(batch_id)


@router.get("/{batch_id}", response_model=BatchOut)
def read_batch(batch_id: BatchId, session: SessionDep, owner: OwnerDep):
    """Counts by status, done/total, and every job's result, best loss first."""
    batch = _get(session, owner, batch_id)
    jobs = session.scalars(select(Job).where(Job.batch_id == batch_id)).all()
    counts = Counter(j.status for j in jobs)
    ranked = sorted(jobs, key=lambda j: (j.best_loss is None, j.best_loss or 0.0, str(j.id)))
    return BatchOut(
        id=batch.id,
        name=batch.name,
        created_at=batch.created_at,
        base=batch.base,
        grid=batch.grid,
        total=len(jobs),
        done=sum(counts[s] for s in TERMINAL_STATUSES),
        counts=dict(counts),
        leaderboard=[
            {
                "grid_point": j.grid_point,
                "job_id": j.id,
                "status": j.status,
                "final_loss": j.final_loss,
                "best_loss": j.best_loss,
            }
            for j in ranked
        ],
    )


@router.post("/{batch_id}/retry", response_model=Retried)
def retry_batch(batch_id: BatchId, session: SessionDep, celery: CeleryDep, owner: OwnerDep):
    """Queue the batch's failed and cancelled jobs again; they resume from their checkpoints.
    Succeeded, queued and running jobs are left alone."""
    with session.begin():
        _get(session, owner, batch_id)
        requeued = session.scalars(
            update(Job)
            .where(Job.batch_id == batch_id, Job.status.in_(("failed", "cancelled")))
            .values(
                status="queued",
                error=None,
                attempt=0,
                cancel_requested_at=None,
                finished_at=None,
                published_at=None,
            )
            .returning(Job.id)
        ).all()
    submission.publish_committed(session, celery, list(requeued))
    return Retried(requeued=sorted(requeued, key=str))


def _get(session, owner: str, batch_id: uuid.UUID) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None or batch.owner != owner:
        raise HTTPException(404, detail=f"batch {batch_id} not found")
    return batch
