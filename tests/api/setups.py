"""The two set-ups the API is tested on: embedded (a SQLite file and the SQLite broker) and
production's PostgreSQL + Redis. A test module that needs both overrides `settings`:

    @pytest.fixture(params=SETUPS)
    def settings(request, tmp_path):
        return setup_settings(request, tmp_path)
"""

from __future__ import annotations

import pytest

from models.migrate import upgrade
from settings import Settings
from worker.celery_app import make_celery, prepare_broker

SETUPS = ["embedded", "postgresql+redis"]


def setup_settings(request: pytest.FixtureRequest, tmp_path) -> Settings:
    """Settings on a migrated, empty database for the set-up `request.param` names."""
    if request.param == "embedded":
        s = Settings(database_url=f"sqlite:///{tmp_path}/deltaflow.db", flush_interval=0.05)
    else:
        s = Settings(
            database_url=request.getfixturevalue("postgres_url"),
            broker_url=request.getfixturevalue("redis_url"),
            flush_interval=0.05,
        )
    upgrade(s.database_url)
    prepare_broker(make_celery(s), s)
    return s
