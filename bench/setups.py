"""The two set-ups the benchmarks compare: the embedded default (a SQLite file and the SQLite
broker) and production's PostgreSQL + Redis, each made fresh for one run and removed after.

PostgreSQL and Redis are expected on 127.0.0.1 (a new database, and Redis index 14, emptied);
DELTAFLOW_BENCH_REDIS names another Redis, so that benchmarks run side by side do not empty
each other's.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = os.environ.get("DELTAFLOW_BENCH_REDIS", "redis://127.0.0.1:6379/14")
SETUPS = ("embedded", "postgresql+redis")


@contextmanager
def environment(setup: str, home: Path) -> Iterator[dict[str, str]]:
    """DELTAFLOW_* variables for a fresh, empty `setup` (one of SETUPS) whose files live in
    `home`; the PostgreSQL database is dropped and the Redis index emptied afterwards."""
    if setup == "embedded":
        yield {"DELTAFLOW_DATABASE_URL": f"sqlite:///{home}/deltaflow.db"}
        return
    if setup != "postgresql+redis":
        raise ValueError(f"unknown set-up {setup!r}; choose from {', '.join(SETUPS)}")
    database = f"deltaflow_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    broker = redis.Redis.from_url(REDIS)
    broker.flushdb()
    try:
        yield {
            "DELTAFLOW_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
            "DELTAFLOW_BROKER_URL": REDIS,
        }
    finally:
        broker.flushdb()
        broker.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
