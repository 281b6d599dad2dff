"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file of its own, made to poll
every 0.1 s (kombu's default is 1 s), to let a stopping worker go within 0.2 s (not 2 s), and to
survive its file being deleted.

The stock transport hands every transport option to create_engine, so the poll interval is set
on a subclass. And it caches one engine per URL for the life of the process: were the file
deleted, every process would go on using its own unlinked copy, each blind to the others'
messages. Here a channel that finds its file gone drops the cached engine, so the next
operation creates a fresh file (in WAL mode, its tables declared) that every process then
shares; the messages lost with the old file are published again by the reaper, because the
job rows, not the broker, say which jobs still wait.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from kombu.transport.sqlalchemy import _MUTEX
from kombu.transport.sqlalchemy import Channel as SqlaChannel
from kombu.transport.sqlalchemy import Transport as SqlaTransport
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

PREFIX = "sqlite:///"
STOP_CHECK_SECONDS = 0.2


def _wal(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


def _inode(url: str) -> int | None:
    try:
        return os.stat(url.removeprefix(PREFIX)).st_ino
    except FileNotFoundError:
        return None


class Channel(SqlaChannel):
    # The file each process-wide cached engine opened, and the one this channel's session uses.
    _inodes: ClassVar[dict[str, int | None]] = {}
    _session_inode: int | None = None

    def _open(self):
        url = self.connection.client.hostname
        fresh = url not in self._engines
        engine, session = super()._open()
        if fresh:
            event.listen(engine, "connect", _wal)
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
    Channel = Channel
    polling_interval = 0.1

    def drain_events(self, connection: Any, timeout: Any = None, **kwargs: Any) -> Any:
        # Celery's blocking consumer loop (this transport has no event loop) asks for up to 2 s
        # per call and sees a shutdown only between calls: a stopping worker waited that long.
        if timeout is not None:
            timeout = min(timeout, STOP_CHECK_SECONDS)
        return super().drain_events(connection, timeout=timeout, **kwargs)


def release(url: str) -> None:
    """Dispose the engine this process cached for the broker file at `url`, for a process
    done with that broker (an API shutting down; a test that made its own). Without this, a
    process that meets many broker files keeps every one of them open."""
    with _MUTEX:
        cached = Channel._engines.pop(url, None)
        Channel._inodes.pop(url, None)
    if cached is not None:
        cached[0].dispose()
