"""/v1/jobs/{id}: cancel a job, delete a finished one, predict with its network, stream its
progress (SSE)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable
from typing import Annotated

import anyio
import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from api import history
from api.deps import OwnerDep, SessionDep, get_owned
from api.errors import problems, unprocessable
from api.fields import MAX_EPOCH, OwnQuery
from api.schemas import (
    EpochPoint,
    EpochsEvent,
    JobOut,
    PredictIn,
    PredictOut,
    Problem,
    StatusEvent,
)
from backprop.network import Network
from backprop.spec import TrainSpec
from models import history as stored
from models import lifecycle, lineage
from models.status import TERMINAL
from models.tables import Checkpoint, Job, JobTag

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[uuid.UUID, Path(description="The job's id.")]

POLL_SECONDS = 0.2  # how stale an event stream may be; each poll is two indexed reads
# Epoch rows per `epochs` event: a client that connects after a long job gets the history in
# bounded pieces rather than one event of millions of rows.
EVENT_ROWS = 1000


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobOut,
    responses=problems(404, 422) | {409: {"model": Problem, "description": "The job has ended."}},
)
def cancel_job(job_id: JobId, session: SessionDep, owner: OwnerDep) -> Job:
    """Cancel a job. A queued one is cancelled at once; a running one is asked to stop, and its
    worker stops at its next flush (status `cancelled`, keeping the epochs it stored). Asking
    again keeps the first request's time."""
    with session.begin():
        job = get_owned(session, Job, job_id, owner)
        if not lifecycle.request_cancel(session, job_id):
            session.refresh(job)
            raise HTTPException(409, detail=f"job {job_id} has already ended ({job.status})")
        session.refresh(job)
    return job


@router.delete(
    "/{job_id}",
    status_code=204,
    responses=problems(404, 422)
    | {409: {"model": Problem, "description": "The job is queued or running, or has forks."}},
)
def delete_job(job_id: JobId, session: SessionDep, owner: OwnerDep) -> None:
    """Delete a finished job with its epochs, snapshots, checkpoint and tags; keep its data set,
    which other jobs may share."""
    with session.begin():
        job = get_owned(session, Job, job_id, owner)
        if not job.status.terminal:
            raise _still_running(job_id, job.status)
        if forks := lineage.children(session, job_id):
            raise HTTPException(409, detail=_has_forks(job_id, forks))
        # The history has no foreign key (models.tables), so nothing cascades to it.
        stored.delete(session, job_id)
        for table in (Checkpoint, JobTag):
            session.execute(delete(table).where(table.job_id == job_id))
        # Guarded by the status so a job requeued since the read above (a batch retry) is kept:
        # raising here rolls every delete back.
        gone = session.execute(
            delete(Job).where(Job.id == job_id, Job.status.in_(TERMINAL)).returning(Job.id)
        ).first()
        if gone is None:
            raise _still_running(job_id, "queued again")


def _has_forks(job_id: uuid.UUID, forks: list[uuid.UUID]) -> str:
    """Forks read their parent's epochs up to the fork where they are stored, so a parent
    goes only after them: deleting it would take their history's first part."""
    named = ", ".join(map(str, forks[:10])) + (
        f" and {len(forks) - 10} more" if len(forks) > 10 else ""
    )
    return (
        f"job {job_id} has {len(forks)} fork(s) whose history includes its epochs: {named}; "
        "delete the forks first"
    )


def _still_running(job_id: uuid.UUID, status: str) -> HTTPException:
    return HTTPException(
        409, detail=f"job {job_id} is {status}; cancel it first or wait until it ends"
    )


@router.post("/{job_id}/predict", response_model=PredictOut, responses=problems(404, 413, 422))
def predict(
    job_id: JobId, body: PredictIn, session: SessionDep, owner: OwnerDep, own: OwnQuery = False
) -> PredictOut:
    """a^L for the inputs x, with the parameters of the snapshot at `epoch` (default: latest)."""
    # A transaction of its own, ended before the forward pass: on SQLite every transaction
    # holds the write lock (BEGIN IMMEDIATE), which workers need for their flushes.
    with session.begin():
        job = get_owned(session, Job, job_id, owner)
        spec = TrainSpec.model_validate(job.spec)
        _check_width(body.x, spec.network.layers[0])
        at, theta = history.snapshot(session, job, spec, body.epoch, own=own)
    net = _network(spec, theta)
    with np.errstate(over="ignore", invalid="ignore"):
        outputs = net.predict(np.asarray(body.x, dtype=np.float64))
    if not np.isfinite(outputs).all():
        raise unprocessable(
            ["body", "x"], "the network's outputs overflow for these inputs; scale them down"
        )
    return PredictOut(epoch=at, outputs=outputs.tolist())


def _check_width(x: list[list[float]], n_0: int) -> None:
    for i, row in enumerate(x):
        if len(row) != n_0:
            raise unprocessable(
                ["body", "x", str(i)],
                f"each row of x needs {n_0} values, the width n_0 of the network's input "
                f"layer; this row has {len(row)}",
            )


def _network(spec: TrainSpec, theta: np.ndarray) -> Network:
    """The engine's network with a snapshot's parameters θ (in θ's layout)."""
    n = spec.network
    net = Network(n.layers, n.activation, n.output_activation, spec.dtype, n.leaky_slope)
    net.theta[...] = theta
    return net


def _stream_start(job_id: JobId, request: Request, owner: OwnerDep) -> StatusEvent:
    """The job's status before the stream starts, so an unknown job gets a plain 404.

    A short session of its own rather than SessionDep, which would stay open (and on SQLite
    hold the write lock) for as long as the client listens."""
    with request.app.state.sessions() as session:
        return _status(get_owned(session, Job, job_id, owner))


def _event_fields(
    fields: Annotated[
        str | None,
        Query(max_length=300, description="Epoch fields each epoch carries besides loss and "
              "val_loss, comma-separated (dead_fraction,update_ratio_weights)."),
    ] = None,
) -> list[str]:  # fmt: skip
    """Checked before the stream starts, so an unknown field is a plain 422."""
    chosen = history.parse_fields(fields) if fields else []
    return [f for f in chosen if f not in ("loss", "val_loss")]


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses=problems(404, 422),
)
async def events(
    job_id: JobId,
    request: Request,
    start: Annotated[StatusEvent, Depends(_stream_start)],
    extra: Annotated[list[str], Depends(_event_fields)],
    last_event_id: Annotated[
        int | None,
        Header(ge=0, le=MAX_EPOCH, description="Resume after this epoch (an event's id)."),
    ] = None,
    own: OwnQuery = False,
) -> AsyncIterable[ServerSentEvent]:
    """Server-sent events: `status` on connect and on every change (with the job's health
    alerts), `epochs` for each batch of newly flushed epochs. Every event's id is the last
    epoch sent, so a reconnecting client resumes where it stopped. The stream ends after the
    final status of a finished job."""
    sessions = request.app.state.sessions
    after = last_event_id or 0
    sent = start
    yield _event(start, after)
    while True:
        state, rows = await anyio.to_thread.run_sync(_poll, sessions, job_id, after, own, extra)
        if state is None:
            return  # deleted meanwhile: a reconnecting client gets its 404
        if rows:
            after = rows[-1].epoch
            yield ServerSentEvent(event="epochs", id=str(after), data=EpochsEvent(epochs=rows))
        if len(rows) == EVENT_ROWS:
            continue  # more rows are waiting; the status follows once they are sent
        finished = state.status.terminal
        if finished or state.status != sent.status:
            sent = state
            yield _event(state, after)
        if finished or await request.is_disconnected():
            return
        await anyio.sleep(POLL_SECONDS)


def _poll(
    sessions: sessionmaker[Session], job_id: uuid.UUID, after: int, own: bool, extra: list[str]
) -> tuple[StatusEvent | None, list[EpochPoint]]:
    """The job's status, then the epoch rows after `after` (a fork's: its parent's up to the
    fork, then its own, unless `own`) with the `extra` fields, in one short session."""
    with sessions() as s:
        # The job row is read first: its final status is written in the same transaction as
        # the last epochs, so a finished status read here means every epoch is visible below.
        job = s.get(Job, job_id)
        if job is None:
            return None, []
        where = lineage.segments(s, job, own=own)
        cols = stored.epoch_columns(
            s, where, ["loss", "val_loss", *extra], history.n_layers(job), first=after + 1,
            limit=EVENT_ROWS,
        )  # fmt: skip
        named = {k: _json_safe(v) for k, v in cols.items()}
        rows = zip(*named.values(), strict=True)
        points = [EpochPoint(**dict(zip(named, row, strict=True))) for row in rows]
        return _status(job), points


def _json_safe(values: np.ndarray) -> list:
    """The column as JSON numbers, NaN as null (per layer: a list each)."""
    rows = values.tolist()
    if values.dtype.kind != "f":
        return rows
    if values.ndim == 1:
        return [None if v != v else v for v in rows]
    return [[None if v != v else v for v in row] for row in rows]


def _status(job: Job) -> StatusEvent:
    return StatusEvent(
        status=job.status, epochs_done=job.epochs_done, final_loss=job.final_loss, error=job.error,
        reason=job.reason, health=job.health,
    )  # fmt: skip


def _event(status: StatusEvent, after: int) -> ServerSentEvent:
    return ServerSentEvent(event="status", id=str(after), data=status)
