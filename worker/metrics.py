"""This process's share of /metrics: cumulative counters kept in memory, written to its row.

The API, the workers (on any host) and the reaper are separate processes, so none of them can
answer for the others from an in-process registry. Each worker or reaper process writes its
whole cumulative counters into its own `process_metrics` row (models.ProcessMetrics) and the
API sums the rows when it is scraped. A worker writes its row inside the flush transaction it
commits anyway, so the count of epochs stored commits with the rows that hold them and costs
no commit of its own; the reaper writes its row at each pass. A background thread in each
worker process writes what a flush could not — a flush's own duration is known only after its
commit — once the worker is idle, and keeps `last_seen_at` fresh: it is how /metrics counts
the workers alive.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.tables import ProcessMetrics, add_counters

log = logging.getLogger(__name__)

# Seconds, 10 µs (an XOR epoch) to 100 s (a large epoch, a flush through a slow database).
BUCKETS = (*(float(f"{m}e{e}") for e in range(-5, 2) for m in (1, 2.5, 5)), 100.0)
_BOUNDS = np.array(BUCKETS)
TICK = 1.0  # seconds between the heartbeat's looks at the recorder
RETIRED = "retired"  # the row that keeps the counts of processes long gone


def histogram(seconds: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Observations as a histogram in the counters' JSON form (bucket i counts values ≤ le[i]
    and above le[i-1]; the last bucket is +Inf)."""
    values = np.asarray(seconds, dtype=np.float64)
    counts = np.bincount(np.searchsorted(_BOUNDS, values), minlength=len(BUCKETS) + 1)
    return {"le": list(BUCKETS), "counts": counts.tolist(), "sum": float(values.sum())}


class Recorder:
    """The counters of this process and its row. `lock` must be held from `write` until
    `written`, so that two writers (a flush and the heartbeat) never store totals out of order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.hostname}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.started_at = utcnow()
        self.lock = threading.RLock()
        self.saved: dict[str, Any] = {}  # what the row holds
        self.pending: dict[str, Any] = {}  # counted, not written yet
        self.saved_at = float("-inf")  # time.monotonic() of the last write that committed
        self._in_db = False
        # A job runs: its flushes write the row, and the heartbeat stays out of their way (a
        # heartbeat stuck on a dead connection while holding `lock` would stall them).
        self.working = False

    def add(self, counters: dict[str, Any]) -> None:
        """Count something that is not written with a flush (durations, retries, reaper work)."""
        with self.lock:
            self.pending = add_counters(self.pending, counters)

    def write(self, s: Session, more: dict[str, Any] | None = None) -> dict[str, Any]:
        """Store saved + pending + `more` in this process's row, inside `s`'s transaction;
        returns the totals to hand to `written` once that transaction committed."""
        fresh = add_counters(self.pending, more or {})
        totals = add_counters(self.saved, fresh)
        now = utcnow()
        mine = update(ProcessMetrics).where(ProcessMetrics.id == self.id)
        changed = mine.values(last_seen_at=now, counters=totals).returning(ProcessMetrics.id)
        if s.execute(changed).first() is not None:
            return totals
        if self._in_db:  # the reaper retired the row: its counts are in RETIRED now
            totals = fresh
        s.execute(
            insert(ProcessMetrics).values(
                id=self.id, kind=self.kind, hostname=self.hostname, pid=self.pid,
                started_at=self.started_at, last_seen_at=now, counters=totals,
            )
        )  # fmt: skip
        return totals

    def written(self, totals: dict[str, Any]) -> None:
        """The transaction that wrote `totals` committed."""
        self.saved, self.pending = totals, {}
        self.saved_at = time.monotonic()
        self._in_db = True

    def save(
        self,
        sessions: sessionmaker[Session],
        more: dict[str, Any] | None = None,
        also: Callable[[Session], object] | None = None,
    ) -> None:
        """Write the row in a transaction of its own, with `also`'s work if given."""
        with self.lock:
            with sessions.begin() as s:
                totals = self.write(s, more)
                if also is not None:
                    also(s)
            self.written(totals)

    def due(self, every: float, quiet: float) -> bool:
        """No job runs, and `every` seconds passed since the last write, or counts are pending
        and nothing was written for `quiet` seconds."""
        if self.working:
            return False
        since = time.monotonic() - self.saved_at
        return since >= every or (bool(self.pending) and since >= quiet)


def start_heartbeat(
    recorder: Recorder, sessions: sessionmaker[Session], every: float, flush_interval: float
) -> threading.Event:
    """While no job runs, write the row every `every` seconds, and the counts a job's last
    flush left pending once nothing was written for a flush interval and a tick (so that jobs
    in quick succession carry them in their own flushes); set the returned event to stop."""
    stop = threading.Event()
    quiet = flush_interval + TICK

    def beat() -> None:
        while True:
            if recorder.due(every, quiet):
                try:
                    recorder.save(sessions)
                except Exception as exc:  # the database is away: the next tick tries again
                    log.warning("could not write this worker's metrics: %s", exc)
            if stop.wait(TICK):
                return

    threading.Thread(target=beat, name="deltaflow-metrics", daemon=True).start()
    return stop


def retire(s: Session, before: datetime) -> int:
    """Fold the rows of processes not seen since `before` into the RETIRED row: the sums stay
    the same and the table stays as small as the fleet. Returns how many rows were folded."""
    gone = s.scalars(
        delete(ProcessMetrics)
        .where(ProcessMetrics.last_seen_at < before, ProcessMetrics.kind != RETIRED)
        .returning(ProcessMetrics.counters)
    ).all()  # a DELETE claims each row once, even with two reapers at it
    if not gone:
        return 0
    row = s.scalar(select(ProcessMetrics).where(ProcessMetrics.id == RETIRED).with_for_update())
    total = row.counters if row else {}
    for counters in gone:
        total = add_counters(total, counters)
    if row is None:
        now = utcnow()
        s.add(ProcessMetrics(id=RETIRED, kind=RETIRED, hostname="", pid=0, started_at=now,
                             last_seen_at=now, counters=total))  # fmt: skip
    else:
        row.counters = total
    return len(gone)
