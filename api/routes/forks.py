"""/v1/jobs/{id}/fork and /v1/jobs/{id}/lineage: continue a job's exact state as a new job, and
see the tree of forks a job belongs to."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response

from api import forks, submission
from api.deps import OwnerDep, QueueDep, SessionDep, SettingsDep, get_owned
from api.errors import problems
from api.forks import ForkIn, LineageOut
from api.schemas import JobOut
from models.tables import Job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[uuid.UUID, Path(description="The job's id.")]


@router.post(
    "/{job_id}/fork",
    status_code=201,
    response_model=JobOut,
    responses=submission.idempotent_responses(JobOut, "the fork") | problems(404, 422),
)
def fork_job(
    job_id: JobId,
    body: ForkIn,
    response: Response,
    session: SessionDep,
    queue: QueueDep,
    owner: OwnerDep,
    settings: SettingsDep,
    idempotency_key: submission.IdempotencyKey = None,
) -> Job:
    """A new queued job that starts from this job's exact state after `epoch` — parameters,
    optimizer moments, random generator, early stopping's counters — and trains epoch k+1 on
    with the overrides. Its epochs count the parent's: a fork at 100 of a 200-epoch spec trains
    101–200 and ends with epochs_done 200. Its history serves the parent's epochs ≤ k (read
    where they are stored, never copied) followed by its own; `?own=true` its own only. An
    `Idempotency-Key` makes a retry answer the fork it made (200) instead of making another."""
    request = {"fork_of": str(job_id)} | body.model_dump(mode="json")
    digest = submission.request_digest(request) if idempotency_key else None

    def store() -> Job:
        parent = get_owned(session, Job, job_id, owner)
        return forks.fork(session, owner, parent, body, settings, (idempotency_key, digest))

    job, created = submission.create_once(session, Job, owner, idempotency_key, digest, store)
    if created:
        submission.publish(session, queue, [job.id])
    else:
        response.status_code = 200
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


@router.get("/{job_id}/lineage", response_model=LineageOut, responses=problems(404, 422))
def read_lineage(job_id: JobId, session: SessionDep, owner: OwnerDep) -> LineageOut:
    """The job's ancestors (the job it was forked from, that job's parent, … up to the root)
    and descendants (its forks, their forks, …)."""
    return forks.lineage_of(session, get_owned(session, Job, job_id, owner))
