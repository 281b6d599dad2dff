"""The embedded broker: its file re-created or replaced while every process uses it, and the
doorbell that lets an idle consumer poll without a transaction."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing, suppress
from pathlib import Path

import pytest
from kombu import Queue
from kombu.transport.sqlalchemy import Channel as SqlaChannel
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


PUBLISH = """
import sys, uuid
from settings import Settings
from worker.celery_app import make_celery, prepare_broker, publish, release_broker
settings = Settings(database_url=sys.argv[1])
app = make_celery(settings)
prepare_broker(app, settings)
publish(app, uuid.UUID(sys.argv[2]))
release_broker(app, settings)
"""


def publish_elsewhere(database_url: str, job_id: uuid.UUID) -> None:
    """Publish `job_id` from another process, as the API does, into the broker file beside
    `database_url` (created and declared if it is not there)."""
    subprocess.run([sys.executable, "-c", PUBLISH, database_url, str(job_id)], check=True)


class Consumer:
    """A consumer of the deltaflow queue, on the connection Celery's worker would use, that
    counts the polls that reached kombu's transaction."""

    def __init__(self, conn, monkeypatch) -> None:
        self.conn, self.bodies, self.transactions = conn, [], 0
        stock = SqlaChannel._get

        def counted(channel, queue, *args):
            self.transactions += 1
            return stock(channel, queue, *args)

        monkeypatch.setattr(SqlaChannel, "_get", counted)
        queue = Queue(QUEUE, routing_key=QUEUE)
        self.consumer = conn.Consumer([queue], callbacks=[self._take], accept=["json"])
        self.consumer.consume()

    def _take(self, body, message) -> None:
        self.bodies.append(body)
        message.ack()

    def idle(self, rounds: int = 5) -> None:
        for _ in range(rounds):
            with pytest.raises(TimeoutError):
                self.conn.drain_events(timeout=0.05)

    def receive(self, deadline: float = 30.0) -> list:
        started = time.monotonic()
        while not self.bodies and time.monotonic() - started < deadline:
            with suppress(TimeoutError):
                self.conn.drain_events(timeout=0.2)
        return [args for args, _kwargs, _embed in self.bodies]


@pytest.fixture
def broker(tmp_path):
    """The broker file beside a fresh database, its queue declared, and a connection to it."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/deltaflow.db")
    app = make_celery(settings)
    prepare_broker(app, settings)
    with app.connection_for_write() as conn:
        yield settings, conn
    release_broker(app, settings)


def test_an_idle_consumer_polls_without_transactions_and_gets_another_process_message(
    broker, monkeypatch
):
    """While nothing is committed to the broker file, a poll ends at the doorbell (no BEGIN
    IMMEDIATE); a publish from another process rings it, and the message is delivered."""
    settings, conn = broker
    consumer = Consumer(conn, monkeypatch)
    consumer.idle(1)
    polled = consumer.transactions
    consumer.idle()
    assert consumer.transactions == polled  # the doorbell ended every idle poll
    job_id = uuid.uuid4()
    publish_elsewhere(settings.database_url, job_id)
    assert consumer.receive() == [[str(job_id)]]


def test_an_idle_consumer_follows_a_replaced_broker_file(broker, tmp_path, monkeypatch):
    """The file is replaced (renamed over) by another broker file holding a message while a
    consumer idles: its doorbell and its session leave the old file for the new one."""
    settings, conn = broker
    consumer = Consumer(conn, monkeypatch)
    consumer.idle()
    (tmp_path / "elsewhere").mkdir()
    other = Settings(database_url=f"sqlite:///{tmp_path}/elsewhere/deltaflow.db")
    job_id = uuid.uuid4()
    publish_elsewhere(other.database_url, job_id)  # its WAL checkpointed on closing
    for suffix in ("-wal", "-shm"):  # the old file's, which the new one must not inherit
        Path(f"{settings.broker_file}{suffix}").unlink(missing_ok=True)
    os.replace(other.broker_file, settings.broker_file)
    assert consumer.receive() == [[str(job_id)]]


def test_a_publisher_follows_a_replaced_broker_file(broker, tmp_path):
    """A channel that published keeps the queue row's id; once the file is replaced by one
    whose row has another id, its next message goes into the new file, under that row."""
    settings, conn = broker
    conn.default_channel._put(QUEUE, {"job": "first"})
    (tmp_path / "elsewhere").mkdir()
    other = Settings(database_url=f"sqlite:///{tmp_path}/elsewhere/deltaflow.db")
    publish_elsewhere(other.database_url, uuid.uuid4())  # a file made by another process
    with closing(sqlite3.connect(other.broker_file)) as db, db:
        db.execute("UPDATE kombu_queue SET id = 7")
        db.execute("DELETE FROM kombu_message")
    for suffix in ("-wal", "-shm"):
        Path(f"{settings.broker_file}{suffix}").unlink(missing_ok=True)
    os.replace(other.broker_file, settings.broker_file)
    conn.default_channel._put(QUEUE, {"job": "second"})
    with closing(sqlite3.connect(settings.broker_file)) as db:
        rows = db.execute("SELECT queue_id, payload FROM kombu_message").fetchall()
    assert rows == [(7, '{"job": "second"}')]
