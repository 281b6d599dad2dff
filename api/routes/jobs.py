"""/v1/jobs: submit a job, list and read jobs, their epochs and their snapshots."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Response
from sqlalchemy import select, tuple_, update

from api import datasets, pagination
from api.deps import CeleryDep, OwnerDep, SessionDep, get_job
from api.errors import unprocessable
from api.schemas import EpochOut, JobCreate, JobOut, LayerOut, Page, SnapshotEpoch, SnapshotOut
from backprop import data
from models import Epoch, Job, JobTag, Snapshot, utcnow
from models.arrays import Layout
from worker.celery_app import publish

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[uuid.UUID, Path(description="The job's id.")]
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page.")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]


@router.post("", status_code=201, response_model=JobOut)
def submit(
    body: JobCreate, response: Response, session: SessionDep, celery: CeleryDep, owner: OwnerDep
) -> Job:
    """Validate the spec against its data, store the job, then publish its id to the workers."""
    spec = body.spec()
    with session.begin():
        dataset, name, x, y = datasets.load(session, owner, body.dataset)
        try:
            data.prepare(spec, x, y)
        except ValueError as exc:
            raise unprocessable(["body", "dataset"], str(exc)) from None
        dataset = dataset or datasets.store(session, owner, name, x, y)
        job = Job(
            id=uuid.uuid4(),
            owner=owner,
            name=body.name,
            tags=body.tags,
            spec=spec.model_dump(mode="json"),
            dataset_id=dataset.id,
            epochs_total=spec.epochs,
        )
        session.add(job)
        session.add_all(JobTag(job_id=job.id, key=k, value=v) for k, v in body.tags.items())
    # Published only after the commit; if publishing fails the reaper publishes it later.
    try:
        publish(celery, job.id)
        with session.begin():
            session.execute(update(Job).where(Job.id == job.id).values(published_at=utcnow()))
    except Exception:
        log.exception("publishing job %s failed; the reaper will publish it", job.id)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


@router.get("", response_model=Page[JobOut])
def list_jobs(session: SessionDep, owner: OwnerDep, limit: Limit = 50, cursor: Cursor = None):
    """Jobs, newest first."""
    query = select(Job).where(Job.owner == owner)
    if cursor:
        position = pagination.decode(cursor, _job_position)
        query = query.where(tuple_(Job.created_at, Job.id) < position)
    rows = session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    items = list(rows)
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = pagination.encode([last.created_at.isoformat(), str(last.id)])
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{job_id}", response_model=JobOut)
def read_job(job_id: JobId, session: SessionDep, owner: OwnerDep) -> Job:
    return get_job(session, owner, job_id)


@router.get("/{job_id}/epochs", response_model=Page[EpochOut])
def list_epochs(
    job_id: JobId,
    session: SessionDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Cursor = None,
):
    """Per-epoch metrics in epoch order."""
    get_job(session, owner, job_id)
    after = pagination.decode(cursor, int) if cursor else 0
    rows = session.scalars(
        select(Epoch)
        .where(Epoch.job_id == job_id, Epoch.epoch > after)
        .order_by(Epoch.epoch)
        .limit(limit + 1)
    ).all()
    items = [_epoch_out(r) for r in rows[:limit]]
    next_cursor = pagination.encode(items[-1].epoch) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{job_id}/snapshots", response_model=Page[SnapshotEpoch])
def list_snapshots(
    job_id: JobId, session: SessionDep, owner: OwnerDep, limit: Limit = 500, cursor: Cursor = None
):
    """The epochs that have a snapshot (0 is the initial network)."""
    get_job(session, owner, job_id)
    after = pagination.decode(cursor, int) if cursor else -1
    epochs = session.scalars(
        select(Snapshot.epoch)
        .where(Snapshot.job_id == job_id, Snapshot.epoch > after)
        .order_by(Snapshot.epoch)
        .limit(limit + 1)
    ).all()
    items = [{"epoch": e} for e in epochs[:limit]]
    next_cursor = pagination.encode(epochs[limit - 1]) if len(epochs) > limit else None
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{job_id}/snapshots/{epoch}", response_model=SnapshotOut)
def read_snapshot(
    job_id: JobId,
    epoch: Annotated[str, Path(pattern=r"^(latest|\d+)$", description="An epoch, or `latest`.")],
    session: SessionDep,
    owner: OwnerDep,
):
    """W^l and b^l at an epoch, in the seed's convention: weights[k][j] = w^l_kj."""
    job = get_job(session, owner, job_id)
    if epoch == "latest":
        latest = session.scalar(
            select(Snapshot.epoch).where(Snapshot.job_id == job_id).order_by(Snapshot.epoch.desc())
        )
        if latest is None:
            raise HTTPException(404, detail=f"job {job_id} has no snapshot yet")
        number = latest
    else:
        number = int(epoch)
    row = session.get(Snapshot, (job_id, number))
    if row is None:
        raise HTTPException(404, detail=f"job {job_id} has no snapshot at epoch {number}")
    Ws, bs = Layout(job.spec["network"]["layers"], job.spec["dtype"]).split(row.parameters)
    layers = [
        LayerOut(layer=l, weights=W.tolist(), biases=b.tolist())
        for l, (W, b) in enumerate(zip(Ws, bs, strict=True), start=1)
    ]
    return SnapshotOut(epoch=number, layers=layers)


def _epoch_out(row: Epoch) -> EpochOut:
    return EpochOut(
        epoch=row.epoch,
        loss=row.loss,
        val_loss=row.val_loss,
        accuracy=row.accuracy,
        val_accuracy=row.val_accuracy,
        grad_norm_weights=np.frombuffer(row.grad_norm_weights, "<f8").tolist(),
        grad_norm_biases=np.frombuffer(row.grad_norm_biases, "<f8").tolist(),
        learning_rate=row.learning_rate,
        duration_ms=row.duration_ms,
    )


def _job_position(value: list[str]) -> tuple[datetime, uuid.UUID]:
    created_at, job_id = value
    return datetime.fromisoformat(created_at), uuid.UUID(job_id)
