"""Celery tasks: thin, like a web view — take an id, let the runner re-fetch everything."""

from __future__ import annotations

import contextlib
import os
import uuid

from billiard import process
from celery.signals import worker_process_init, worker_shutting_down

from worker.celery_app import TASK_TRAIN, app
from worker.context import RELEASE_SIGNAL, catch_release_signal, runner, worker_process_setup


@worker_process_init.connect
def _setup_process(**_kwargs) -> None:
    worker_process_setup()


@worker_shutting_down.connect
def _release_running_jobs(**_kwargs) -> None:
    """On SIGTERM the main process waits for running tasks; telling the pool processes makes
    each one checkpoint and release its job within an epoch instead of finishing it."""
    for child in process.active_children():
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.kill(child.pid, RELEASE_SIGNAL)


@app.task(name=TASK_TRAIN)
def train(job_id: str) -> str:
    catch_release_signal()
    return runner().run(uuid.UUID(job_id))
