"""Shared fixtures: real databases (SQLite files, PostgreSQL databases, Redis indexes).

Migrating is the slow part of a fresh database, so each test session (each pytest-xdist worker)
migrates twice at most: a SQLite template file, with the embedded broker's file beside it, and
a PostgreSQL template database. A test then gets a copy of the file (~1 ms) or a database made
with CREATE DATABASE … TEMPLATE. Migrations themselves are tested on empty databases
(`sqlite_url`, `postgres_url`) in tests/models/.

PostgreSQL and Redis are expected on 127.0.0.1 (DELTAFLOW_TEST_PG, DELTAFLOW_TEST_REDIS override
the addresses). Without them those tests skip — unless DELTAFLOW_REQUIRE_SERVICES=1, as in CI,
where a missing service fails the run instead of silently skipping it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.factories import sessions_on, unavailable

PG_ADMIN = os.environ.get("DELTAFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("DELTAFLOW_TEST_REDIS", "redis://127.0.0.1:6379")
DB_FILE = "deltaflow.db"
# Longest first, so that pytest-xdist's workers end together instead of one running a long
# service test alone at the end; modules keep their places within a rank and their own order.
LONG_FIRST = (
    "tests/cli/",
    "tests/browser/",
    "tests/api/test_fuzz.py",
    "tests/e2e/test_faults.py",
    "tests/e2e/",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        found = (i for i, prefix in enumerate(LONG_FIRST) if item.nodeid.startswith(prefix))
        return next(found, len(LONG_FIRST))

    items.sort(key=rank)


@contextmanager
def pg_admin():
    """An autocommit connection to the server's maintenance database."""
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL", exc)
    with admin:
        yield admin


def pg_url(name: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def checkpoint(path: Path) -> None:
    """Move a WAL-mode SQLite file's log into the file itself, so copying the file alone
    copies every committed row."""
    db = sqlite3.connect(path)
    try:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.close()
    assert busy == 0, f"{path} is still in use: its log could not be checkpointed"


class Databases:
    """Empty databases, and copies of templates migrated once (on first use)."""

    def __init__(self, directory: Path, worker: str) -> None:
        self.directory, self.worker = directory, worker
        self.sqlite_template: Path | None = None
        self.pg_template: str | None = None

    def sqlite(self, directory: Path) -> str:
        """A migrated SQLite file in `directory`, the embedded broker's file beside it."""
        from settings import Settings

        template = self._sqlite_template()
        url = f"sqlite:///{directory}/{DB_FILE}"
        broker = Settings(database_url=url).broker_file.name
        for name in (DB_FILE, broker):
            shutil.copyfile(template / name, directory / name)
        return url

    def _sqlite_template(self) -> Path:
        if self.sqlite_template is None:
            from models.migrate import upgrade
            from settings import Settings
            from worker.celery_app import make_celery, prepare_broker

            settings = Settings(database_url=f"sqlite:///{self.directory}/{DB_FILE}")
            upgrade(settings.database_url)
            prepare_broker(make_celery(settings), settings)
            checkpoint(self.directory / DB_FILE)
            checkpoint(settings.broker_file)
            self.sqlite_template = self.directory
        return self.sqlite_template

    @contextmanager
    def postgres(self, migrated: bool = True) -> Iterator[str]:
        """A new PostgreSQL database, empty or a copy of the migrated template; dropped after."""
        template = self._pg_template() if migrated else None
        name = f"deltaflow_test_{uuid.uuid4().hex[:12]}"
        with pg_admin() as admin:
            copy = f' TEMPLATE "{template}"' if template else ""
            admin.execute(f'CREATE DATABASE "{name}"{copy}')
            # A commit returns before its WAL reaches the disk (~0.1 ms instead of ~2.5 ms
            # here): what other sessions see is the same; only a crash of the server itself
            # could lose the last commits, and no test crashes the server.
            admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        try:
            yield pg_url(name)
        finally:
            with pg_admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _pg_template(self) -> str:
        if self.pg_template is None:
            from models.migrate import upgrade

            name = f"deltaflow_template_{self.worker}_{uuid.uuid4().hex[:8]}"
            with pg_admin() as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            self.pg_template = name
            upgrade(pg_url(name))  # its engine is disposed: no connection stays open
            # CREATE DATABASE … TEMPLATE fails while anyone is connected to the template.
            with pg_admin() as admin:
                admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        return self.pg_template

    def close(self) -> None:
        if self.pg_template is not None:
            with pg_admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.pg_template}" WITH (FORCE)')


class RedisIndexes:
    """Redis database indexes 1–15 split among the xdist workers, each lent to one test or
    module at a time and emptied before and after."""

    def __init__(self, worker: int, workers: int) -> None:
        self.free = [i for i in range(1, 16) if (i - 1) % workers == worker]

    @contextmanager
    def take(self) -> Iterator[str]:
        import redis

        if not self.free:
            pytest.fail("every Redis database index of this worker is in use")
        index = self.free.pop(0)
        url = f"{REDIS}/{index}"
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        try:
            client.flushdb()
        except redis.RedisError as exc:
            self.free.append(index)
            client.close()
            unavailable("Redis", exc)
        try:
            yield url
        finally:
            client.flushdb()
            client.close()
            self.free.append(index)


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    """Empty and migrated databases; templates are made on first use and dropped at the end.
    tmp_path_factory's directory is this worker's own under xdist, and so are the names."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    found = Databases(tmp_path_factory.mktemp("templates"), worker)
    yield found
    found.close()


@pytest.fixture(scope="session")
def redis_indexes() -> RedisIndexes:
    """The Redis database indexes this worker may use, so parallel workers never share one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return RedisIndexes(int(worker.removeprefix("gw")), count)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite file (not created yet)."""
    return f"sqlite:///{tmp_path}/deltaflow.db"


@pytest.fixture
def postgres_url(databases: Databases) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    with databases.postgres(migrated=False) as url:
        yield url


@pytest.fixture
def redis_url(redis_indexes: RedisIndexes) -> Iterator[str]:
    """A Redis database index of its own, emptied before and after the test."""
    with redis_indexes.take() as url:
        yield url


@pytest.fixture(params=["sqlite_url", "postgres_url"], ids=["sqlite", "postgresql"])
def database_url(request) -> str:
    """Both databases deltaflow supports, empty."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def migrated_sqlite_url(databases: Databases, tmp_path: Path) -> str:
    """A SQLite file at the latest migration, the embedded broker's file prepared beside it."""
    return databases.sqlite(tmp_path)


@pytest.fixture
def migrated_postgres_url(databases: Databases) -> Iterator[str]:
    """A PostgreSQL database at the latest migration, for one test."""
    with databases.postgres() as url:
        yield url


@pytest.fixture(
    params=["migrated_sqlite_url", "migrated_postgres_url"], ids=["sqlite", "postgresql"]
)
def migrated_database_url(request) -> str:
    """Both databases deltaflow supports, at the latest migration."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def sessions(settings):
    """Sessions on the database of the directory's `settings` fixture."""
    with sessions_on(settings.database_url) as found:
        yield found
