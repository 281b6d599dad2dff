"""/v1/jobs: submit a job, list jobs with filters, read one."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import datasets, limits, listing, submission
from api.deps import CeleryDep, OwnerDep, SessionDep, SettingsDep, get_job
from api.errors import problems, unprocessable
from api.fields import CursorQuery, IsoTime, Name, PageLimit, TagFilter
from api.schemas import AttemptOut, JobCreate, JobDetail, JobOut, Page
from backprop import data
from models.tables import JOB_STATUSES, Job, JobAttempt
from settings import Settings

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[uuid.UUID, Path(description="The job's id.")]
JobStatus = Literal[JOB_STATUSES]  # type: ignore[valid-type]


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
    celery: CeleryDep,
    owner: OwnerDep,
    settings: SettingsDep,
    idempotency_key: submission.IdempotencyKey = None,
) -> Job:
    """Validate the spec against its data, store the job, then publish its id to the workers."""
    digest = submission.request_digest(body.model_dump(mode="json")) if idempotency_key else None
    job, created = submission.create_once(
        session,
        Job,
        owner,
        idempotency_key,
        digest,
        lambda: _store(session, owner, body, settings, idempotency_key, digest),
    )
    if created:
        submission.publish_committed(session, celery, [job.id], drop=settings.fault_drop_publish)
    else:
        response.status_code = 200
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


def _store(
    session: Session,
    owner: str,
    body: JobCreate,
    settings: Settings,
    key: str | None,
    digest: str | None,
) -> Job:
    """Check the spec against the limits and its data, and add the job (and a new data set);
    no commit."""
    spec = body.spec()
    dataset, name, x, y = datasets.load(session, owner, body.dataset)
    limits.check(spec, x, settings, [])
    try:
        data.prepare(spec, x, y)
    except ValueError as exc:
        raise unprocessable(["body", "dataset"], str(exc)) from None
    dataset = dataset or datasets.store(session, owner, name, x, y)
    return submission.add_job(
        session, owner, body, spec, dataset.id, idempotency_key=key, request_sha256=digest
    )


@router.get("", response_model=Page[JobOut], responses=problems(422))
def list_jobs(
    session: SessionDep,
    owner: OwnerDep,
    status: Annotated[
        list[JobStatus] | None, Query(max_length=len(JOB_STATUSES), description="Any of.")
    ] = None,
    name: Annotated[Name | None, Query(description="Name prefix.")] = None,
    tag: Annotated[
        list[TagFilter] | None,
        Query(max_length=50, description="Repeatable `key:value`: all must hold."),
    ] = None,
    batch_id: uuid.UUID | None = None,
    created_after: IsoTime | None = None,
    created_before: IsoTime | None = None,
    order_by: listing.Order = "-created_at",
    limit: PageLimit = 50,
    cursor: CursorQuery = None,
):
    """Jobs, filtered, newest first unless `order_by` says otherwise."""
    where = listing.filters(owner, status, name, tag, batch_id, created_after, created_before)
    items, next_cursor = listing.page(session, where, order_by, limit, cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{job_id}", response_model=JobDetail, responses=problems(404, 422))
def read_job(job_id: JobId, session: SessionDep, owner: OwnerDep) -> JobDetail:
    """The job, with every attempt workers made at it: a resumed job shows why."""
    job = get_job(session, owner, job_id)
    attempts = session.scalars(
        select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.attempt)
    ).all()
    fields = JobOut.model_validate(job).model_dump()
    return JobDetail(**fields, attempts=[AttemptOut.model_validate(a) for a in attempts])
