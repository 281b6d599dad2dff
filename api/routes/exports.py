"""/v1/epochs: the epochs of many jobs as one Apache Arrow IPC stream, a record batch per job.

The jobs are chosen and checked before the answer starts (a 404 or 422 is still possible
then); the stream is written as the chunks are read, a group of jobs per query, so a million
rows never sit in memory at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated

import pyarrow as pa
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from api import arrow, history, listing
from api.deps import OwnerDep, SessionDep
from api.errors import binary, problems
from api.fields import MAX_EPOCH, BatchQuery, JobIdsQuery, StatusesQuery, TagsQuery
from api.routes.history import ARROW_COLUMNS, BINARY
from models import history as stored
from models import lineage

router = APIRouter(prefix="/v1/epochs", tags=["history"])

MAX_JOBS = 10_000  # chosen by batch or filters
GROUP_EPOCHS = 200_000  # epochs read per query: ~20 MB of columns with every field
EXPORT_200 = binary(
    "An Apache Arrow IPC stream (media type application/vnd.apache.arrow.stream when Accept "
    "names it): `job_id` (dictionary of the jobs' ids as strings; a pandas category), then "
    f"{ARROW_COLUMNS}, L the deepest job's (null for a shallower job's missing layers). One "
    "record batch per job with epochs in the range, in the jobs' order of creation; a fork's "
    "history includes its parent's up to the fork. pyarrow.ipc.open_stream reads it."
)


@router.get("", response_class=StreamingResponse, responses={200: EXPORT_200, **problems(404, 422)})
def export_epochs(
    request: Request,
    session: SessionDep,
    owner: OwnerDep,
    job_id: JobIdsQuery = None,
    batch: BatchQuery = None,
    status: StatusesQuery = None,
    tag: TagsQuery = None,
    start: Annotated[int, Query(ge=0, le=MAX_EPOCH, description="First epoch.")] = 0,
    end: Annotated[int | None, Query(ge=0, le=MAX_EPOCH, description="Last epoch.")] = None,
    fields: Annotated[
        str | None, Query(max_length=200, description="Comma-separated; default all.")
    ] = None,
) -> StreamingResponse:
    """The epochs of the caller's jobs chosen by id, batch, status and tags (every selector
    given must hold), at most 10,000 jobs: a range and fields as GET /v1/jobs/{id}/epochs."""
    chosen = history.parse_fields(fields)
    jobs = listing.choose(session, owner, job_id, batch, status, tag, MAX_JOBS)
    depth = max((history.n_layers(j) for j in jobs), default=0)
    target = arrow.schema(chosen, depth, job_id=True)
    plan = [(j.id, lineage.segments(session, j), history.n_layers(j), j.epochs_done) for j in jobs]
    # End the request's transaction now: on SQLite it holds the write lock, which the
    # stream's own session would wait on for as long as the answer takes.
    session.close()
    batches = _batches(request.app.state.sessions, plan, chosen, depth, target, (start, end))
    wanted = arrow.STREAM in request.headers.get("accept", "")
    return StreamingResponse(
        arrow.stream(target, batches), media_type=arrow.STREAM if wanted else BINARY
    )


Plan = list[tuple[uuid.UUID, stored.History, int, int]]


def _batches(
    sessions: sessionmaker[Session], plan: Plan, fields: list[str], depth: int,
    target: pa.Schema, span: tuple[int, int | None],
) -> Iterator[pa.RecordBatch]:  # fmt: skip
    """A record batch per job with epochs, read a group at a time in a session of its own (the
    request's may be gone while the answer streams)."""
    dictionary = pa.array([str(job) for job, *_ in plan], pa.string())
    with sessions() as s:
        for offset, group in _groups(plan):
            wheres = {job: where for job, where, _, _ in group}
            widths = {job: n for job, _, n, _ in group}
            found = stored.many_epoch_columns(
                s, wheres, fields, widths, first=max(span[0], 1), last=span[1]
            )
            for index, (job, *_) in enumerate(group, start=offset):
                columns = found[job]
                if len(columns["epoch"]):
                    yield arrow.batch(columns, target, depth, index, dictionary)


def _groups(plan: Plan) -> Iterator[tuple[int, Plan]]:
    """Consecutive jobs holding about GROUP_EPOCHS epochs together (at least one job), each
    group with the position of its first job in the plan."""
    first, held = 0, 0
    for i, item in enumerate(plan):
        if i > first and held + item[3] > GROUP_EPOCHS:
            yield first, plan[first:i]
            first, held = i, 0
        held += item[3]
    if first < len(plan):
        yield first, plan[first:]
