"""/v1/batches: queued batch runs over a grid of settings, their progress and leaderboard."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response
from sqlalchemy import select

from api import batch_view, batches, pagination, submission
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
from models.tables import Batch

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
    """Counts by status, done/total, epochs trained, and the leaderboard: every job, best loss
    first, or by the scheduler's metric. A scheduled batch also shows its rung ladder, each
    trial's rung, status and latest decision, and the decision log in order."""
    return batch_view.batch_out(session, get_owned(session, Batch, batch_id, owner))


@router.post("/{batch_id}/retry", response_model=Retried, responses=problems(404, 422))
def retry_batch(batch_id: BatchId, session: SessionDep, queue: QueueDep, owner: OwnerDep):
    """Queue the batch's failed and cancelled jobs again; they resume from their checkpoints.
    Succeeded, queued and running jobs are left alone."""
    with session.begin():
        get_owned(session, Batch, batch_id, owner)
        requeued = lifecycle.retry(session, batch_id)
    submission.publish(session, queue, requeued)
    return Retried(requeued=sorted(requeued, key=str))
