from __future__ import annotations

import pytest

from cli.services import Stack
from tests.conftest import free_port


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory):
    """A real service (api, worker, reaper as processes) for one test module."""
    tmp = tmp_path_factory.mktemp("cli")
    env = {
        "DELTAFLOW_DATABASE_URL": f"sqlite:///{tmp}/db.sqlite",
        "DELTAFLOW_FLUSH_INTERVAL": "0.2",
    }
    stack = Stack(port=free_port(), env=env, log_dir=tmp / "logs")
    try:
        stack.start()
        yield stack.url
    finally:
        stack.stop()
