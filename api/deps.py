"""Request dependencies as Annotated aliases: settings, a session, the Celery app, the caller."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from api.auth import Caller, authenticate
from models.tables import Job
from settings import Settings


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def _celery(request: Request) -> Celery:
    return request.app.state.celery


CallerDep = Annotated[Caller, Depends(authenticate)]


def _owner(caller: CallerDep) -> str:
    return caller.owner


def _admin(caller: CallerDep) -> Caller:
    if not caller.admin:
        raise HTTPException(403, detail="managing API keys needs an admin key")
    return caller


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionDep = Annotated[Session, Depends(_session)]
CeleryDep = Annotated[Celery, Depends(_celery)]
OwnerDep = Annotated[str, Depends(_owner)]
AdminDep = Annotated[Caller, Depends(_admin)]


def get_job(session: Session, owner: str, job_id: uuid.UUID) -> Job:
    """The caller's job, or 404 (also for another owner's job)."""
    job = session.get(Job, job_id)
    if job is None or job.owner != owner:
        raise HTTPException(404, detail=f"job {job_id} not found")
    return job
