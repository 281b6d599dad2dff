from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cli.services import Stack
from tests.conftest import free_port


@contextmanager
def service(tmp: Path, **env: str) -> Iterator[str]:
    """A real service (api, worker, reaper as processes) on a SQLite file under `tmp`; yields
    its URL. `env` adds DELTAFLOW_* settings."""
    env = {
        "DELTAFLOW_DATABASE_URL": f"sqlite:///{tmp}/db.sqlite",
        "DELTAFLOW_FLUSH_INTERVAL": "0.2",
        **env,
    }
    stack = Stack(port=free_port(), env=env, log_dir=tmp / "logs")
    try:
        stack.start()
        yield stack.url
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real service with auth off (the default), shared by the modules here: starting and
    stopping one takes seconds. Tests find their own jobs by id, name or batch."""
    with service(tmp_path_factory.mktemp("cli"), DELTAFLOW_AUTH="off") as found:
        yield found
