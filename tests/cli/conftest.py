from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.factories import running, sqlite_stack


@pytest.fixture(scope="package")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real service (api, worker, reaper as processes) with auth off (the default), shared by
    the modules here: starting and stopping one takes seconds. Tests find their own jobs by id,
    name or batch."""
    with running(sqlite_stack(tmp_path_factory.mktemp("cli"), DELTAFLOW_AUTH="off")) as stack:
        yield stack.url
