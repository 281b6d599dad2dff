"""The two set-ups the API is tested on: embedded (a SQLite file and the SQLite broker) and
production's PostgreSQL + Redis. A test module that needs both overrides `settings`:

    @pytest.fixture(params=SETUPS)
    def settings(request, databases, redis_indexes, tmp_path):
        with setup(request.param, databases, redis_indexes, tmp_path) as s:
            yield s
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from settings import Settings

SETUPS = ["embedded", "postgresql+redis"]


@contextmanager
def setup(kind: str, databases, redis_indexes, directory: Path) -> Iterator[Settings]:
    """Settings on a migrated, empty database (and a prepared broker) for the set-up `kind`;
    the database and the Redis index are given back afterwards."""
    if kind == "embedded":
        yield Settings(database_url=databases.sqlite(directory), flush_interval=0.05)
        return
    with databases.postgres() as database_url, redis_indexes.take() as broker_url:
        yield Settings(database_url=database_url, broker_url=broker_url, flush_interval=0.05)
