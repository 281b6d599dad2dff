"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file of its own, made to poll
every few milliseconds without a transaction per empty poll, to let a stopping worker go within
0.2 s (not 2 s), and to survive its file being deleted or replaced.

Each of kombu's polls is an ORM query inside BEGIN IMMEDIATE, ~2.5 ms of CPU here and the write
lock, so polling often was costly and polling seldom made every job wait (0.1 s here before:
~80 ms from submit to start). A Doorbell reads `PRAGMA data_version` on a read-only connection
of its own (a few µs, no lock): SQLite changes it whenever another connection, in any process,
commits to the file. While it has not changed since the channel last found its queue empty,
nothing can have arrived, and the poll ends there. The Transport decides how often to look.

The file's connections commit with synchronous=NORMAL: under WAL that skips the fsync of each
commit (~3 ms here, on every publish and every delivery) and loses nothing when a process
dies; a power cut may undo the last commits, which the design already absorbs: a lost publish
is republished by the reaper, a lost delivery is delivered again and finds nothing to claim.

The stock transport hands every transport option to create_engine, so its settings live on
subclasses. And it caches one engine per URL for the life of the process: were the file
deleted, every process would go on using its own unlinked copy, each blind to the others'
messages. Here a channel that finds its file gone or replaced (another inode) drops the cached
engine, so the next operation uses (or creates: WAL mode, tables declared) the file every
process then shares; the doorbell reopens on it too. The messages lost with the old file are
published again by the reaper, because the job rows, not the broker, say which jobs still wait.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from functools import cached_property
from json import dumps
from queue import Empty
from typing import Any, ClassVar

from kombu.transport.sqlalchemy import _MUTEX
from kombu.transport.sqlalchemy import Channel as SqlaChannel
from kombu.transport.sqlalchemy import Transport as SqlaTransport
from sqlalchemy import Insert, event, insert
from sqlalchemy.exc import IntegrityError

PREFIX = "sqlite:///"
STOP_CHECK_SECONDS = 0.2
POLL_SECONDS = 0.002
IDLE_POLL_SECONDS = 0.05
HOT_SECONDS = 2.0


def _pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _inode(url: str) -> int | None:
    try:
        return os.stat(url.removeprefix(PREFIX)).st_ino
    except FileNotFoundError:
        return None


class Doorbell:
    """Whether anything was committed to a SQLite file since a moment of one's choosing.

    `ticket()` names the file's state now; equal tickets mean no other connection committed in
    between. Tickets carry the connection's generation, because a reopened connection counts
    data_version afresh, and None means "cannot tell" (the file is missing or unreadable)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._inode: int | None = None
        self._generation = 0

    def ticket(self) -> tuple[int, int] | None:
        inode = _inode(self.path)
        if inode != self._inode:
            self.close()  # deleted or replaced: the open connection reads a file nobody uses
        if inode is None:
            return None
        try:
            db = self._db or self._open(inode)
            return self._generation, db.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            self.close()
            return None

    def _open(self, inode: int) -> sqlite3.Connection:
        # Read-only: data_version ignores the commits of the connection that reads it, so this
        # one must never write.
        uri = f"file:{self.path}?mode=ro"
        self._db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        self._inode = inode
        self._generation += 1
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
        self._db, self._inode = None, None


class Channel(SqlaChannel):
    # The file each process-wide cached engine opened, and the one this channel's session uses.
    _inodes: ClassVar[dict[str, int | None]] = {}
    _session_inode: int | None = None
    _doorbell: Doorbell | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The doorbell's ticket at each queue's last empty poll.
        self._quiet: dict[str, tuple[int, int] | None] = {}
        # Queue rows' ids, and the file (inode) they were read from.
        self._queue_ids: dict[str, int] = {}
        self._queue_ids_inode: int | None = None

    def _engine_from_config(self):
        # Before kombu's create_all takes the engine's first connection.
        engine = super()._engine_from_config()
        event.listen(engine, "connect", _pragmas)
        return engine

    def _open(self):
        url = self.connection.client.hostname
        fresh = url not in self._engines
        engine, session = super()._open()
        if fresh:
            self._inodes[url] = _inode(url)
        return engine, session

    @property
    def session(self):
        # Another process may have replaced the file already: compare inodes, not existence.
        url = self.connection.client.hostname
        current = _inode(url)
        if url in self._inodes and self._inodes[url] != current:
            with _MUTEX:
                cached = self._engines.pop(url, None)
                self._inodes.pop(url, None)
            if cached is not None:
                cached[0].dispose()
        if self._session is not None and self._session_inode != current:
            self._session.close()
            self._session = None
        session = super().session
        self._session_inode = self._inodes.get(url)
        return session

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # kombu looks the queue row up and flushes an ORM object for every message, ~2 ms each,
        # and a 1,000-point batch publishes 1,000: here one prepared INSERT, in a transaction
        # of its own as kombu's (an OperationalError still fails the publish). The override
        # is flagged because kombu's two base classes name the message argument differently.
        queue_id = self._queue_id(queue)
        engine, _ = self._open()
        with engine.begin() as conn:
            conn.execute(self._insert_message, {"queue_id": queue_id, "payload": dumps(payload)})

    @cached_property
    def _insert_message(self) -> Insert:
        return insert(self.message_cls.__table__)

    def _queue_id(self, queue: str) -> int:
        """The queue row's id, read once per file (a replaced file has rows of its own)."""
        inode = _inode(self.connection.client.hostname)
        if inode != self._queue_ids_inode:
            self._queue_ids, self._queue_ids_inode = {}, inode
        if queue not in self._queue_ids:
            self._queue_ids[queue] = self._get_or_create(queue).id
            self.session.commit()  # ends the look-up, which held a connection of the pool
        return self._queue_ids[queue]

    @property
    def doorbell(self) -> Doorbell:
        if self._doorbell is None:
            self._doorbell = Doorbell(self.connection.client.hostname.removeprefix(PREFIX))
        return self._doorbell

    def _get(self, queue: str, timeout: Any = None) -> Any:
        # The ticket is taken before the poll's transaction: a commit after it changes the next
        # ticket, so a message can never arrive unseen behind a ticket that matches.
        ticket = self.doorbell.ticket()
        if ticket is not None and self._quiet.get(queue) == ticket:
            raise Empty()
        self.connection.stir()
        try:
            return super()._get(queue)
        except Empty:
            self._quiet[queue] = ticket
            raise

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        self.connection.stir(wake=True)

    def close(self) -> None:
        super().close()
        if self._doorbell is not None:
            self._doorbell.close()

    def _get_or_create(self, queue):
        # Every process re-creates a deleted file's queue row, and kombu's get-or-create locks
        # out only this process's threads: another process's row can win the insert (UNIQUE
        # name), and the IntegrityError killed the worker. That row is the one to use.
        try:
            return super()._get_or_create(queue)
        except IntegrityError:
            self.session.rollback()
            return super()._get_or_create(queue)


class Transport(SqlaTransport):
    """Polls every POLL_SECONDS while anything happens, every IDLE_POLL_SECONDS once nothing
    has for HOT_SECONDS, or while its pool is full: each poll, even one the doorbell ends, is a
    wake-up of the process (~0.1 ms of CPU here), and an idle worker should cost next to
    nothing. A worker that acks a message polls at once: a backlog's next job waits for it."""

    Channel = Channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wake = threading.Event()
        self.stirred_at = time.monotonic()

    def stir(self, wake: bool = False) -> None:
        """Something happened: poll often for a while (and, with `wake`, at once)."""
        self.stirred_at = time.monotonic()
        if wake:
            self._wake.set()

    def drain_events(self, connection: Any, timeout: Any = None, **kwargs: Any) -> Any:
        # Celery's blocking consumer loop (this transport has no event loop) asks for up to 2 s
        # per call and sees a shutdown only between calls: a stopping worker waited that long.
        started, cycle = time.monotonic(), self.cycle
        assert cycle is not None  # made by kombu's Transport.__init__
        if timeout is not None:
            timeout = min(timeout, STOP_CHECK_SECONDS)
        while True:
            try:
                return cycle.get(self._deliver, timeout=timeout)
            except Empty:
                now = time.monotonic()
                if timeout is not None and now - started >= timeout:
                    raise TimeoutError() from None
                self._wake.wait(POLL_SECONDS if self._eager(now) else IDLE_POLL_SECONDS)
                self._wake.clear()

    def _eager(self, now: float) -> bool:
        # A worker whose pool is full takes nothing until it acks, and the ack wakes it.
        consuming = [c for c in self.channels if c._consumers]
        free = any(c.qos.can_consume() for c in consuming)
        return free and now - self.stirred_at < HOT_SECONDS


def release(url: str) -> None:
    """Dispose the engine this process cached for the broker file at `url`, for a process
    done with that broker (an API shutting down; a test that made its own). Without this, a
    process that meets many broker files keeps every one of them open."""
    with _MUTEX:
        cached = Channel._engines.pop(url, None)
        Channel._inodes.pop(url, None)
    if cached is not None:
        cached[0].dispose()
