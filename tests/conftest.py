"""Shared fixtures: real databases (SQLite files, fresh PostgreSQL databases) and settings.

PostgreSQL and Redis are expected on 127.0.0.1 (DELTAFLOW_TEST_PG, DELTAFLOW_TEST_REDIS override
the addresses). Without them those tests skip — unless DELTAFLOW_REQUIRE_SERVICES=1, as in CI,
where a missing service fails the run instead of silently skipping it.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN = os.environ.get("DELTAFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("DELTAFLOW_TEST_REDIS", "redis://127.0.0.1:6379")
REQUIRED = os.environ.get("DELTAFLOW_REQUIRE_SERVICES") == "1"

# The seed's example as a job body: XOR on a 2-4-1 sigmoid network, quadratic cost, plain SGD.
XOR_JOB = {
    "name": "xor",
    "network": {"layers": [2, 4, 1]},
    "optimizer": {"learning_rate": 2.0},
    "epochs": 250,
    "snapshot_every": 50,
    "dataset": {"builtin": "xor"},
}


def _unavailable(what: str, exc: Exception) -> None:
    if REQUIRED:
        pytest.fail(f"{what} is required (DELTAFLOW_REQUIRE_SERVICES=1) but: {exc}")
    pytest.skip(f"{what} not available: {exc}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/deltaflow.db"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"deltaflow_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database index of its own, emptied before and after the test."""
    import redis

    index = 1 + uuid.uuid4().int % 15
    url = f"{REDIS}/{index}"
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> str:
    """Both databases deltaflow supports."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(name)


@pytest.fixture
def sessions(settings):
    """Sessions on the database of the directory's `settings` fixture."""
    from models.db import make_engine, session_factory

    engine = make_engine(settings.database_url)
    yield session_factory(engine)
    engine.dispose()


def split_snapshot(blob: bytes, sizes: list[int], dtype: str = "float64"):
    """(W^l list, b^l list) of a stored snapshot's θ bytes, in the seed's convention."""
    from backprop.layout import Layout
    from models.arrays import from_bytes

    layout = Layout(sizes)
    return layout.split(from_bytes(blob, dtype, (layout.size,)))
