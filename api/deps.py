"""Request dependencies as Annotated aliases: the settings, a session, the Celery app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from models import DEFAULT_OWNER, Job
from settings import Settings


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def _celery(request: Request) -> Celery:
    return request.app.state.celery


def _owner() -> str:
    return DEFAULT_OWNER


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionDep = Annotated[Session, Depends(_session)]
CeleryDep = Annotated[Celery, Depends(_celery)]
OwnerDep = Annotated[str, Depends(_owner)]


def get_job(session: Session, owner: str, job_id: uuid.UUID) -> Job:
    """The caller's job, or 404 (also for another owner's job)."""
    job = session.get(Job, job_id)
    if job is None or job.owner != owner:
        raise HTTPException(404, detail=f"job {job_id} not found")
    return job
