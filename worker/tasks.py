"""Celery tasks: thin, like a web view — take an id, let the runner re-fetch everything."""

from __future__ import annotations

import contextlib
import os
import uuid

from celery.signals import task_postrun, task_prerun, worker_process_init, worker_shutting_down
from celery.worker import state

from worker.celery_app import TASK_TRAIN, app
from worker.context import RELEASE_SIGNAL, catch_release_signal, runner, worker_process_setup
from worker.logs import bind_job, unbind_job


@worker_process_init.connect
def _setup_process(**_kwargs) -> None:
    worker_process_setup()


@worker_shutting_down.connect
def _release_running_jobs(**_kwargs) -> None:
    """On SIGTERM the main process waits for running tasks; telling the pool processes that run
    one makes each checkpoint and release its job within an epoch instead of finishing it. An
    idle pool process is not told: it has no handler of ours yet, and billiard's own would
    end it abruptly (exit code 70) while the pool is closing it anyway."""
    busy = {request.worker_pid for request in list(state.active_requests) if request.worker_pid}
    for pid in busy:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.kill(pid, RELEASE_SIGNAL)


@task_prerun.connect
def _bind_job(task=None, args=(), **_kwargs) -> None:
    """Celery's lines about the task, its "succeeded in …" too, carry the job id and attempt
    (worker/logs.py)."""
    if task is not None and task.name == TASK_TRAIN and args:
        bind_job(args[0])


@task_postrun.connect
def _unbind_job(**_kwargs) -> None:
    unbind_job()


@app.task(name=TASK_TRAIN)
def train(job_id: str) -> str:
    """What became of the job: its status, or how the run left it (Celery logs this)."""
    catch_release_signal()
    return str(runner().run(uuid.UUID(job_id)))
