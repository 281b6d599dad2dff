"""Request dependencies as Annotated aliases — settings, a session, the queue, the caller — and
`get_owned`, the one way a route reads the caller's row by id."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from api.auth import Caller, authenticate
from api.queue import Queue
from models.tables import Batch, Dataset, Job
from settings import Settings


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def _queue(request: Request) -> Queue:
    return request.app.state.queue


CallerDep = Annotated[Caller, Depends(authenticate)]


def _owner(caller: CallerDep) -> str:
    return caller.owner


def _admin(caller: CallerDep) -> Caller:
    if not caller.admin:
        raise HTTPException(403, detail="managing API keys needs an admin key")
    return caller


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionDep = Annotated[Session, Depends(_session)]
QueueDep = Annotated[Queue, Depends(_queue)]
OwnerDep = Annotated[str, Depends(_owner)]
AdminDep = Annotated[Caller, Depends(_admin)]


Owned = TypeVar("Owned", Job, Batch, Dataset)
WHAT = {Job: "job", Batch: "batch", Dataset: "dataset"}


def get_owned(session: Session, model: type[Owned], row_id: uuid.UUID, owner: str) -> Owned:
    """The caller's row, or 404 — also for another owner's row, which must look as absent as
    one that does not exist."""
    row = session.get(model, row_id)
    if row is None or row.owner != owner:
        raise HTTPException(404, detail=f"{WHAT[model]} {row_id} not found")
    return row
