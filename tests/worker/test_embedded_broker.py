"""The embedded broker's file re-created while every process uses it."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from sqlalchemy.orm import Query

from settings import Settings
from worker.celery_app import QUEUE, make_celery, prepare_broker, release_broker


def test_a_queue_row_another_process_inserted_first_is_used(tmp_path, monkeypatch):
    """Each process re-creates a deleted file's queue row, and kombu's get-or-create locks out
    only its own threads: a row another process inserted between kombu's look-up and its
    insert broke the UNIQUE name, and the worker died of the IntegrityError."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/deltaflow.db")
    app = make_celery(settings)
    prepare_broker(app, settings)  # the queue's row, as the other process inserted it
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        first, misses = Query.first, [None, None]
        # kombu looks the row up twice before it inserts: both look-ups come too early.
        monkeypatch.setattr(Query, "first", lambda q: misses.pop() if misses else first(q))
        assert channel._get_or_create(QUEUE).name == QUEUE
        assert misses == []
    release_broker(app, settings)
    with closing(sqlite3.connect(settings.broker_file)) as db:
        assert db.execute("SELECT name FROM kombu_queue").fetchall() == [(QUEUE,)]
