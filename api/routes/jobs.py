"""/v1/jobs: submit a job, list jobs with filters, read one."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import select

from api import listing, submission
from api.deps import OwnerDep, QueueDep, SessionDep, SettingsDep, get_owned
from api.errors import problems
from api.fields import CursorQuery, IsoTime, Name, PageLimit, TagFilter
from api.schemas import AttemptOut, JobCreate, JobDetail, JobOut, Page
from models.status import JobStatus
from models.tables import Job, JobAttempt

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[uuid.UUID, Path(description="The job's id.")]


@router.post(
    "",
    status_code=201,
    response_model=JobOut,
    responses=submission.idempotent_responses(JobOut, "the job") | problems(404, 413, 422),
)
def submit(
    body: JobCreate,
    response: Response,
    session: SessionDep,
    queue: QueueDep,
    owner: OwnerDep,
    settings: SettingsDep,
    idempotency_key: submission.IdempotencyKey = None,
) -> Job:
    """Validate the spec against its data, store the job, then publish its id to the workers."""
    job, created = submission.submit(
        session=session, queue=queue, settings=settings, owner=owner, body=body,
        idempotency_key=idempotency_key,
    )  # fmt: skip
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


@router.get("", response_model=Page[JobOut], responses=problems(422))
def list_jobs(
    session: SessionDep,
    owner: OwnerDep,
    status: Annotated[
        list[JobStatus] | None, Query(max_length=len(JobStatus), description="Any of.")
    ] = None,
    name: Annotated[Name | None, Query(description="Name prefix.")] = None,
    tag: Annotated[
        list[TagFilter] | None,
        Query(max_length=50, description="Repeatable `key:value`: all must hold."),
    ] = None,
    batch_id: uuid.UUID | None = None,
    created_after: IsoTime | None = None,
    created_before: IsoTime | None = None,
    parent_id: Annotated[uuid.UUID | None, Query(description="Forks of this job.")] = None,
    root_id: Annotated[
        uuid.UUID | None, Query(description="This job and every fork below it.")
    ] = None,
    order_by: listing.Order = "-created_at",
    limit: PageLimit = 50,
    cursor: CursorQuery = None,
):
    """Jobs, filtered, newest first unless `order_by` says otherwise."""
    where = listing.filters(
        owner, status, name, tag, batch_id, created_after, created_before, parent_id, root_id
    )
    items, next_cursor = listing.page(session, where, order_by, limit, cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{job_id}", response_model=JobDetail, responses=problems(404, 422))
def read_job(job_id: JobId, session: SessionDep, owner: OwnerDep) -> JobDetail:
    """The job, with every attempt workers made at it: a resumed job shows why."""
    job = get_owned(session, Job, job_id, owner)
    attempts = session.scalars(
        select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.attempt)
    ).all()
    fields = JobOut.model_validate(job).model_dump()
    return JobDetail(**fields, attempts=[AttemptOut.model_validate(a) for a in attempts])
