"""Celery tasks: thin, like a web view — take an id, let the runner re-fetch everything."""

from __future__ import annotations

import uuid

from celery.signals import worker_process_init

from worker.celery_app import TASK_TRAIN, app
from worker.context import runner, worker_process_setup


@worker_process_init.connect
def _setup_process(**_kwargs) -> None:
    worker_process_setup()


@app.task(name=TASK_TRAIN)
def train(job_id: str) -> str:
    return runner().run(uuid.UUID(job_id))
