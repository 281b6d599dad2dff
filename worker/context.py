"""Per-process resources of a worker, built after the fork: engine, sessions, BLAS threads."""

from __future__ import annotations

from functools import cache

from threadpoolctl import threadpool_limits

from models import make_engine, session_factory
from settings import get_settings
from worker.runner import Runner

_blas_limit = None


def worker_process_setup() -> None:
    """Pin BLAS threads: results are bit-identical only for one thread count (FACTS.md)."""
    global _blas_limit
    _blas_limit = threadpool_limits(get_settings().blas_threads, user_api="blas")
    runner()


@cache
def runner() -> Runner:
    settings = get_settings()
    return Runner(session_factory(make_engine(settings.database_url)), settings)
