"""Submitting jobs: `submit` checks, stores and publishes one, opening and committing its own
transaction; batch runs (api/batches.py) are made of its parts.

The job row is the outbox: a job is committed marked published (`published_at`, in the
transaction that stores it), then published (api/queue.py); only if publishing fails is the
mark taken back, and the reaper publishes the job at its next pass. A crash between the commit
and the publish leaves the mark: the reaper sees the broker hold fewer messages than marked
jobs wait, and publishes the oldest again (worker/reaper.py).

An `Idempotency-Key` makes a submission happen once per owner and key: the key and a digest
of the request are stored on the row it creates (a job, or a batch), and a repeat is answered
with that row — or with 409 if the key came with a different request.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Header, HTTPException
from pydantic import AfterValidator, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import datasets, limits
from api.errors import unprocessable
from api.queue import Queue
from api.schemas import JobCreate, Problem
from backprop import data
from backprop.spec import TrainSpec
from models import outbox
from models.base import utcnow
from models.tables import Batch, Job, JobTag
from settings import Settings


def submit(
    *,
    session: Session,
    queue: Queue,
    settings: Settings,
    owner: str,
    body: JobCreate,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Check the job against the limits and its data, store it (and a new data set) in a
    transaction of its own, then publish it. Returns (job, created): a repeat of an
    Idempotency-Key is answered with the job it created, and nothing new is stored."""
    digest = request_digest(body.model_dump(mode="json")) if idempotency_key else None

    def store() -> Job:
        spec = body.spec()
        dataset, name, x, y = datasets.load(session, owner, body.dataset)
        limits.check(spec, x, settings, [])
        try:
            data.prepare(spec, x, y)
        except ValueError as exc:
            raise unprocessable(["body", "dataset"], str(exc)) from None
        dataset = dataset or datasets.store(session, owner, name, x, y)
        return add_job(
            session, owner, body, spec, dataset.id, idempotency_key=idempotency_key,
            request_sha256=digest,
        )  # fmt: skip

    job, created = create_once(session, Job, owner, idempotency_key, digest, store)
    if created:
        publish(session, queue, [job.id])
    return job, created


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
        published_at=utcnow(),  # published once this commits: no transaction of its own
    )
    session.add(job)
    session.add_all(JobTag(job_id=job.id, key=k, value=v) for k, v in body.tags.items())
    return job


def publish(session: Session, queue: Queue, job_ids: list[uuid.UUID]) -> None:
    """Publish jobs committed marked published; unmark those the broker refused, in a
    transaction of its own, so that the reaper's next pass publishes them."""
    unsent = queue.publish(job_ids)
    if unsent:
        with session.begin():
            outbox.unpublish(session, unsent)


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
