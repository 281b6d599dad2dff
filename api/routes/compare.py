"""/v1/compare: one epoch field of many jobs, as lines thinned server side, with each job's
summary and the hyperparameters the jobs differ in (api/compare.py)."""

from __future__ import annotations

import math
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api import compare, history, listing
from api.deps import OwnerDep, SessionDep
from api.errors import problems
from api.fields import MAX_EPOCH, BatchQuery, JobIdsQuery, StatusesQuery, TagsQuery
from models import history as stored
from models import lineage
from models.status import JobStatus
from models.tables import Job

router = APIRouter(prefix="/v1/compare", tags=["history"])

MAX_COMPARED = 500
GROUP = 100  # jobs read per query


class Summary(BaseModel):
    last: float | None = Field(description="The field at the job's last epoch that has it.")
    min: float | None
    max: float | None
    at: float | None = Field(description="The field at epoch `at`; null without one.")


class ComparedJob(BaseModel):
    id: uuid.UUID
    name: str
    status: JobStatus
    batch_id: uuid.UUID | None
    layers: int = Field(description="L: its per-layer fields have layers 1..L.")
    hyperparameters: dict[str, Any] = Field(
        description="The job's values of the spec keys the compared jobs differ in (dotted)."
    )
    summary: Summary
    epochs: int = Field(description="Epochs the job has stored.")
    epoch: list[int] = Field(description="The epochs of its line: at most `points`.")
    value: list[float | None] = Field(description="The field at each of them (null: none).")


class Comparison(BaseModel):
    field: str
    at: int | None
    points: int = Field(description="The most epochs a line holds.")
    varying: list[str] = Field(description="The spec keys whose values differ between jobs.")
    jobs: list[ComparedJob]


@router.get("", response_model=Comparison, responses=problems(404, 422))
def compare_jobs(
    session: SessionDep,
    owner: OwnerDep,
    job_id: JobIdsQuery = None,
    batch: BatchQuery = None,
    status: StatusesQuery = None,
    tag: TagsQuery = None,
    field: Annotated[
        str, Query(max_length=100, description="An epoch field, or `name_l` for layer l.")
    ] = "loss",
    at: Annotated[
        int | None, Query(ge=1, le=MAX_EPOCH, description="Also summarise the value here.")
    ] = None,
    points: Annotated[int, Query(ge=4, le=5000, description="The most epochs per line.")] = 500,
) -> dict[str, Any]:
    """The field of the caller's jobs chosen by id, batch, status and tags (every selector
    given must hold; at most 500 jobs, oldest first), each thinned to at most `points` epochs
    that keep its first, last, lowest and highest values."""
    name, layer = compare.parse_field(field)
    jobs = listing.choose(session, owner, job_id, batch, status, tag, MAX_COMPARED)
    specs = [compare.flatten(job.spec) for job in jobs]
    keys = compare.varying(specs)
    out = []
    for start in range(0, len(jobs), GROUP):
        group = jobs[start : start + GROUP]
        found = stored.many_epoch_columns(
            session, {j.id: lineage.segments(session, j) for j in group}, [name],
            {j.id: history.n_layers(j) for j in group},
        )  # fmt: skip
        for job, spec in zip(group, specs[start : start + GROUP], strict=True):
            out.append(_line(job, spec, keys, found[job.id], (name, layer), at, points))
    return {"field": field, "at": at, "points": points, "varying": keys, "jobs": out}


def _line(
    job: Job, spec: dict[str, Any], keys: list[str], columns: dict, field: tuple[str, int | None],
    at: int | None, points: int,
) -> dict[str, Any]:  # fmt: skip
    epochs, value = columns["epoch"], compare.values(columns, *field)
    keep = history.thin(value, points)
    return {
        "id": job.id, "name": job.name, "status": job.status, "batch_id": job.batch_id,
        "layers": history.n_layers(job),
        "hyperparameters": {k: spec.get(k) for k in keys},
        "summary": compare.summary(epochs, value, at), "epochs": len(epochs),
        "epoch": epochs[keep].tolist(),
        "value": [v if math.isfinite(v) else None for v in value[keep].tolist()],
    }  # fmt: skip
