"""Storing jobs and telling the workers: shared by single submissions and batch runs.

The job row is the outbox: rows are committed first, then published; a job whose publish
failed stays `queued` with no `published_at`, and the reaper publishes it.

An `Idempotency-Key` makes a submission happen once per owner and key: the key and a digest
of the request are stored on the row it creates (a job, or a batch), and a repeat is answered
with that row — or with 409 if the key came with a different request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from celery import Celery
from fastapi import Header, HTTPException
from pydantic import AfterValidator, Field, StringConstraints
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.schemas import JobCreate, Problem
from backprop.spec import TrainSpec
from models.base import utcnow
from models.tables import Batch, Job, JobTag
from worker.celery_app import publish

log = logging.getLogger(__name__)


def add_job(
    session: Session,
    owner: str,
    body: JobCreate,
    spec: TrainSpec,
    dataset_id: uuid.UUID,
    *,
    name: str | None = None,
    batch_id: uuid.UUID | None = None,
    grid_point: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    request_sha256: str | None = None,
) -> Job:
    """Add a queued job and its tags to the session (the caller commits)."""
    job = Job(
        id=uuid.uuid4(),
        owner=owner,
        name=name or body.name,
        tags=body.tags,
        spec=spec.model_dump(mode="json"),
        dataset_id=dataset_id,
        batch_id=batch_id,
        grid_point=grid_point,
        epochs_total=spec.epochs,
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
    )
    session.add(job)
    session.add_all(JobTag(job_id=job.id, key=k, value=v) for k, v in body.tags.items())
    return job


def publish_committed(
    session: Session, celery: Celery, job_ids: list[uuid.UUID], *, drop: bool = False
) -> None:
    """Publish jobs whose rows are committed, and record when; failures are left to the reaper.
    `drop` (a fault-injection hook) skips publishing as a crash right after the commit would."""
    if drop:
        log.warning("fault hook: %d committed job(s) left unpublished", len(job_ids))
        return
    published = []
    for job_id in job_ids:
        try:
            publish(celery, job_id)
            published.append(job_id)
        except Exception:
            log.exception("publishing job %s failed; the reaper will publish it", job_id)
            break  # the broker is down: the rest would fail the same way
    if published:
        with session.begin():
            session.execute(update(Job).where(Job.id.in_(published)).values(published_at=utcnow()))


def _printable(key: str) -> str:
    if not (key.isascii() and key.isprintable()):
        raise ValueError("use printable ASCII characters only (letters, digits, punctuation)")
    return key


IdempotencyKey = Annotated[
    Annotated[
        str,
        StringConstraints(min_length=1, max_length=200),
        Field(json_schema_extra={"pattern": r"^[\x20-\x7e]+$"}),
        AfterValidator(_printable),
    ]
    | None,
    Header(
        alias="Idempotency-Key",
        description="Makes the request happen once: a repeat with the same key and the same "
        "body answers 200 with what the first one created; the same key with another body "
        "is a 409. 1 to 200 printable ASCII characters; keys are per API key.",
    ),
]


def request_digest(body: dict[str, Any]) -> str:
    """sha256 of the parsed request (`model_dump(mode="json")`) as canonical JSON.

    Of the parsed request rather than the raw bytes, so bodies that ask for the same thing are
    one request: keys in another order, other whitespace, 2 for 2.0, a default given or left
    out. The price: a default changed by an upgrade turns a retry across it into a 409, which
    is the safe side to err on."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


Row = TypeVar("Row", Job, Batch)


def create_once(
    session: Session,
    model: type[Row],
    owner: str,
    key: str | None,
    digest: str | None,
    create: Callable[[], Row],
) -> tuple[Row, bool]:
    """(row, created): `create()` in a transaction of its own — unless `key` already made a
    row for `owner`; then that row, if the same request made it, else 409."""
    if key is None:
        with session.begin():
            return create(), True
    try:
        with session.begin():
            found = _find(session, model, owner, key)
            if found is None:
                return create(), True
    except IntegrityError:
        # A concurrent request with this key committed between our lookup and our insert; the
        # unique index (owner, idempotency_key) refused ours, and its row answers us too.
        with session.begin():
            found = _find(session, model, owner, key)
        if found is None:
            raise  # some other constraint: not a repeat
    if found.request_sha256 != digest:
        kind = "job" if model is Job else "batch"
        raise HTTPException(
            409,
            detail=f"Idempotency-Key {key!r} was used for a different request (it created "
            f"{kind} {found.id}); send a new key with a new request",
        )
    return found, False


def _find(session: Session, model: type[Row], owner: str, key: str) -> Row | None:
    return session.scalar(select(model).where(model.owner == owner, model.idempotency_key == key))


def idempotent_responses(model: type, what: str) -> dict[int | str, dict]:
    """OpenAPI for the two answers an Idempotency-Key adds to a 201."""
    return {
        200: {
            "model": model,
            "description": f"A repeat (same Idempotency-Key and body): {what} the first "
            "request created; nothing new is stored or published.",
        },
        409: {"model": Problem, "description": "The Idempotency-Key came with another body."},
    }
