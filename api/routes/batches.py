"""/v1/batches: queued batch runs over a grid of settings, their progress and leaderboard."""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api import batches, datasets, limits, pagination, submission
from api.deps import CeleryDep, OwnerDep, SessionDep, SettingsDep
from api.errors import problems
from api.fields import CursorQuery, PageLimit
from api.schemas import (
    BatchCreate,
    BatchCreated,
    BatchOut,
    BatchSummary,
    Page,
    Retried,
)
from models.tables import TERMINAL_STATUSES, Batch, Job
from settings import Settings

router = APIRouter(prefix="/v1/batches", tags=["batches"])
BatchId = Annotated[uuid.UUID, Path(description="The batch's id.")]


@router.post(
    "",
    status_code=201,
    response_model=BatchCreated,
    responses=submission.idempotent_responses(BatchCreated, "the batch, with its jobs,")
    | problems(404, 413, 422),
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
    digest = None
    if idempotency_key:
        # Digested as parsed, as POST /v1/jobs does: the base as the job body it parses to.
        digest = submission.request_digest(body.model_dump(mode="json"))
    batch, created = submission.create_once(
        session,
        Batch,
        owner,
        idempotency_key,
        digest,
        lambda: _store(session, owner, body, settings, idempotency_key, digest),
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
    settings: Settings,
    key: str | None,
    digest: str | None,
) -> Batch:
    """Check every grid point against the spec and the data, then add the batch and its jobs
    (and a new data set); no commit."""
    batches.check_grid(body.grid, settings.max_grid_points)
    points = batches.points(body.grid)
    # What the client set, without the defaults: a grid point may switch the optimizer's kind,
    # and the defaults of the base's kind (momentum: 0.9) would not fit another (adam).
    base = body.base.model_dump(mode="json", exclude_unset=True)
    specs = [batches.point_spec(base, p) for p in points]
    dataset, name, x, y = datasets.load(session, owner, body.base.dataset)
    for spec, point in zip(specs, points, strict=True):
        limits.check(spec, x, settings, ["grid"])
        batches.check_data(spec, point, x, y)
    dataset = dataset or datasets.store(session, owner, name, x, y)
    batch = Batch(
        id=uuid.uuid4(),
        owner=owner,
        name=body.name,
        base=base,
        grid=body.grid,
        idempotency_key=key,
        request_sha256=digest,
    )
    session.add(batch)
    session.flush()  # the batch row exists before jobs reference it
    for spec, point in zip(specs, points, strict=True):
        job_name = _job_name(body.base.name, point)
        submission.add_job(
            session,
            owner,
            body.base,
            spec,
            dataset.id,
            name=job_name,
            batch_id=batch.id,
            grid_point=point,
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


def _job_name(name: str, point: dict) -> str:
    label = ", ".join(f"{path}={value}" for path, value in point.items())
    return f"{name} [{label}]"[:200] if label else name


@router.get("", response_model=Page[BatchSummary], responses=problems(422))
def list_batches(
    session: SessionDep,
    owner: OwnerDep,
    limit: PageLimit = 50,
    cursor: CursorQuery = None,
):
    """Batches, newest first."""
    query = select(Batch).where(Batch.owner == owner)
    return pagination.newest_first(session, query, Batch, limit, cursor)


@router.get("/{batch_id}", response_model=BatchOut, responses=problems(404, 422))
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


@router.post("/{batch_id}/retry", response_model=Retried, responses=problems(404, 422))
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
