"""Per-process resources of a worker, built after the fork: engine, sessions, BLAS threads,
the metrics heartbeat, and the signal that turns a shutdown into "checkpoint and release"."""

from __future__ import annotations

import signal
from functools import cache, partial

from celery.signals import worker_init
from threadpoolctl import threadpool_limits

from models.db import make_engine, session_factory
from models.schema import exit_unless_usable
from settings import get_settings
from worker.celery_app import app, publish_many
from worker.metrics import start_heartbeat
from worker.runner import Runner

# The worker's main process forwards its shutdown to the pool processes with this signal
# (Celery's prefork children see no signal of their own on a warm shutdown).
RELEASE_SIGNAL = signal.SIGUSR2
_blas_limit = None


@worker_init.connect
def check_database(**_kwargs) -> None:
    """In the worker's main process, before the pool forks: a database the worker cannot use
    stops it with one sentence (Celery lets SystemExit through its signal dispatch), rather
    than failing every task it would receive."""
    exit_unless_usable(get_settings().database_url)


def worker_process_setup() -> None:
    """In each pool process: pin BLAS threads (results are bit-identical only for one thread
    count, FACTS.md)."""
    global _blas_limit
    settings = get_settings()
    _blas_limit = threadpool_limits(settings.blas_threads, user_api="blas")
    # Beats often enough that /metrics, counting rows seen within a lease TTL, sees it alive.
    start_heartbeat(
        runner().metrics, runner().sessions, settings.lease_ttl / 4, settings.flush_interval
    )


def catch_release_signal() -> None:
    """Make RELEASE_SIGNAL stop the running job at its next epoch. Called as a task starts:
    billiard replaces every signal handler of a pool process after its initializer runs."""
    signal.signal(RELEASE_SIGNAL, lambda *_: runner().stopping.set())


@cache
def runner() -> Runner:
    settings = get_settings()
    # No ping before each checkout (a round trip per transaction): the runner retries what a
    # dead connection fails, and the pool replaces it.
    engine = make_engine(settings.database_url, pool_pre_ping=False)
    return Runner(session_factory(engine), settings, partial(publish_many, app))
