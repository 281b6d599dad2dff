"""/v1/batches: queued batch runs over a grid of settings, their progress and leaderboard."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Path, Response
from sqlalchemy import select

from api import batches, pagination, submission
from api.deps import OwnerDep, QueueDep, SessionDep, SettingsDep, get_owned
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
from models import lifecycle
from models.status import TERMINAL
from models.tables import Batch, Job

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
    queue: QueueDep,
    owner: OwnerDep,
    settings: SettingsDep,
    idempotency_key: submission.IdempotencyKey = None,
):
    """Validate every grid point against the spec and the data, store the batch and its jobs,
    then publish them."""
    batch, job_ids, created = batches.submit(
        session=session, queue=queue, settings=settings, owner=owner, body=body,
        idempotency_key=idempotency_key,
    )  # fmt: skip
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/batches/{batch.id}"
    return BatchCreated(
        id=batch.id,
        name=batch.name,
        created_at=batch.created_at,
        size=batches.size(batch.grid) * batch.num_samples,
        job_ids=job_ids,
    )


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
    batch = get_owned(session, Batch, batch_id, owner)
    jobs = session.scalars(select(Job).where(Job.batch_id == batch_id)).all()
    counts = Counter(j.status for j in jobs)
    ranked = sorted(jobs, key=lambda j: (j.best_loss is None, j.best_loss or 0.0, str(j.id)))
    return BatchOut(
        id=batch.id,
        name=batch.name,
        created_at=batch.created_at,
        base=batch.base,
        grid=batch.grid,
        space=batch.space,
        num_samples=batch.num_samples,
        seed=batch.seed,
        total=len(jobs),
        done=sum(counts[s] for s in TERMINAL),
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
def retry_batch(batch_id: BatchId, session: SessionDep, queue: QueueDep, owner: OwnerDep):
    """Queue the batch's failed and cancelled jobs again; they resume from their checkpoints.
    Succeeded, queued and running jobs are left alone."""
    with session.begin():
        get_owned(session, Batch, batch_id, owner)
        requeued = lifecycle.retry(session, batch_id)
    submission.publish(session, queue, requeued)
    return Retried(requeued=sorted(requeued, key=str))
