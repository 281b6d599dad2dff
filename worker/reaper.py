"""The reaper: recovers what the broker loses (DESIGN §5), in a few set-based statements a pass.

Each pass: running jobs whose lease expired are queued again, unpublished (or failed, once
max_attempts claims were used: models/lifecycle.py), in one transaction; scheduled batches
with paused trials and none queued or running are settled (worker/settle.py); then queued jobs that
were never published (requeued, released by a stopping worker, retried, a publish that failed)
are published. And it republishes only what the broker lost: the job rows say how many queued
jobs were published (Q), the broker says how many messages wait (M), and if Q > M the broker
lost Q − M of them. It is first in, first out, so the messages it still holds are the newest
ones: the lost are the oldest, and the reaper publishes again the Q − M published longest ago,
among those published more than `republish_after` seconds ago. A deep queue waiting for its
workers thus costs two counts a pass, not a message per job. Messages the broker holds for no
queued job (a job cancelled while queued, a duplicate) only make the count miss a loss until a
worker takes them.

A deficit counts only as far as it lasted `republish_after` seconds, pass after pass: messages
are missing from the broker for a moment without being lost — delivered but not yet claimed,
or of jobs the API committed and is still publishing (a batch of 1,000 takes seconds on the
embedded broker, and batches come one after another) — and taking them for lost would
duplicate the oldest messages, which are still there. A loss lasts, so it is always made up;
only publishes under way for the whole window could still cause duplicates.

On the embedded broker each pass also deletes consumed messages, which kombu never does. The
reaper counts what it did and how long its passes took in its process_metrics row
(worker/metrics.py), and folds the rows of processes gone for a day into one.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from celery import Celery
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from models import lifecycle, outbox, trials
from models.base import utcnow
from models.db import make_engine, session_factory
from models.schema import exit_unless_usable
from models.status import JobStatus
from settings import Settings, get_settings
from worker import logs, schedule
from worker.celery_app import make_celery, publish_many, queue_length
from worker.metrics import Recorder, histogram, retire

log = logging.getLogger("worker.reaper")  # not __main__ under python -m
RETIRE_AFTER = timedelta(days=1)  # a process row unseen this long is folded into "retired"
# Publishing is most of a pass's time (~0.5 ms a message on Redis, 2–8 ms on a busy embedded
# broker): a pass publishes in chunks sized to the budget left, and leaves the rest to the next,
# so that it stays well within a second however much waits.
PUBLISH_SECONDS = 0.5
FIRST_CHUNK, CHUNK = 10, 100  # the first chunk measures the broker's pace; the others fit it


@dataclass
class Deficit:
    """How many messages the broker missed at each pass of the last `window` seconds (and the
    last pass before them), less what was published again since (see the module's docstring)."""

    window: float
    seen: deque[tuple[float, int]] = field(default_factory=deque)

    def lasting(self, missing: int, now: float) -> int:
        """Record what this pass (at monotonic time `now`) found missing; returns how many every
        pass of the window found missing — none until the passes span the window."""
        self.seen.append((now, missing))
        while len(self.seen) > 1 and self.seen[1][0] <= now - self.window:
            self.seen.popleft()
        if self.seen[0][0] > now - self.window:
            return 0
        return min(count for _, count in self.seen)

    def sent(self, n: int) -> None:
        """`n` of the missing messages were published again."""
        self.seen = deque((at, max(count - n, 0)) for at, count in self.seen)


def reap_once(
    sessions: sessionmaker[Session], app: Celery, settings: Settings, deficit: Deficit | None = None
) -> Counter:
    """One pass; returns how many jobs were requeued, failed and republished (messages sent).
    `deficit` carries what the broker missed from pass to pass; without it, no lost message is
    published again."""
    done: Counter = Counter()
    now = utcnow()
    with sessions.begin() as s:
        done[JobStatus.FAILED] = len(lifecycle.give_up(s, now, settings.max_attempts))
        done["requeued"] = len(lifecycle.requeue_expired(s, now))
        stuck = trials.stuck_batches(s)
    for batch_id in stuck:
        with sessions.begin() as s:
            queued = schedule.settle_stuck(s, batch_id)
        done["settled"] += 1
        publish_many(app, queued)  # what it cannot send, the broker's count finds missing
    deadline = time.monotonic() + PUBLISH_SECONDS
    unpublished = partial(outbox.take_unpublished, now=now)
    done["republished"] = _publish(sessions, app, deadline, unpublished)
    if deficit is not None:
        stale = now - timedelta(seconds=settings.republish_after)
        done["republished"] += _make_up(sessions, app, deadline, deficit, stale)
    return +done


def _make_up(
    sessions: sessionmaker[Session], app: Celery, deadline: float, deficit: Deficit,
    stale: datetime,
) -> int:  # fmt: skip
    """Publish again the oldest jobs the broker lost, as far as the loss lasted; returns how many
    were sent."""
    try:
        waiting = queue_length(app)  # first: what a worker takes before the count errs safe
    except Exception as exc:  # the broker is away: nothing can be published anyway
        log.warning("could not read the broker's queue length: %s", exc)
        return 0
    with sessions.begin() as s:
        missing = max(outbox.published_waiting(s) - waiting, 0)
    lasting = deficit.lasting(missing, time.monotonic())
    lost = partial(outbox.take_stale, now=utcnow(), before=stale)
    sent = _publish(sessions, app, deadline, lost, lasting)
    deficit.sent(sent)
    return sent


Take = Callable[[Session, int], list[uuid.UUID]]  # marks up to n jobs published, returns them


def _publish(
    sessions: sessionmaker[Session], app: Celery, deadline: float, take: Take,
    most: int | None = None,
) -> int:  # fmt: skip
    """Publish what `take` marks, a chunk at a time, until it finds no more, `most` were sent or
    the deadline passed; returns how many were sent. Each chunk is marked and committed before
    it is published, so that no other reaper publishes it too, and unmarked if the broker
    refuses it (a crash in between leaves it marked, and the broker's count finds it missing)."""
    sent, each = 0, 0.0  # seconds a message took in the last chunk
    while (most is None or sent < most) and (left := deadline - time.monotonic()) > 0:
        limit = min(CHUNK, int(left / each) + 1 if each else FIRST_CHUNK)
        limit = limit if most is None else min(limit, most - sent)
        started = time.monotonic()
        with sessions.begin() as s:
            chunk = take(s, limit)
        if not chunk:
            break
        n = publish_many(app, chunk)
        sent, each = sent + n, (time.monotonic() - started) / len(chunk)
        if n < len(chunk):
            with sessions.begin() as s:
                outbox.unpublish(s, chunk[n:])
            break
    return sent


def purge_consumed(settings: Settings) -> int:
    """Delete the embedded broker's consumed messages (kombu keeps them with visible = 0);
    returns how many."""
    if not settings.embedded_broker or not settings.broker_file.exists():
        return 0
    engine = make_engine(f"sqlite:///{settings.broker_file}")
    try:
        with engine.begin() as conn:
            return conn.execute(text("DELETE FROM kombu_message WHERE visible = 0")).rowcount
    finally:
        engine.dispose()


def record_pass(
    sessions: sessionmaker[Session],
    recorder: Recorder,
    done: Counter,
    retire_before: datetime,
    seconds: float | None = None,
) -> None:
    """Count a pass's work (and its duration) in the reaper's row, and fold long-gone processes'
    rows, in one transaction (the row's last_seen_at says the reaper is alive)."""
    actions = {"requeued": 0, JobStatus.FAILED: 0, "republished": 0, "purged": 0} | dict(done)
    counters: dict = {"reaper_actions": actions}
    if seconds is not None:
        counters["reaper_pass_seconds"] = histogram([seconds])
    recorder.save(sessions, counters, also=lambda s: retire(s, retire_before))


def run_pass(
    sessions: sessionmaker[Session], app: Celery, settings: Settings, deficit: Deficit,
    recorder: Recorder,
) -> tuple[Counter, float]:  # fmt: skip
    """One pass as the reaper process runs it — reap, purge the embedded broker, record what it
    did — and its duration in seconds (the recording's transaction left out)."""
    started = time.perf_counter()
    done = reap_once(sessions, app, settings, deficit)
    done["purged"] += purge_consumed(settings)
    seconds = time.perf_counter() - started
    record_pass(sessions, recorder, done, utcnow() - RETIRE_AFTER, seconds)
    return +done, seconds


def main() -> None:
    """Run the reaper until SIGTERM or SIGINT (`python -m worker.reaper`)."""
    settings = get_settings()
    logs.configure(settings.log_format, "%(asctime)s reaper %(message)s")
    exit_unless_usable(settings.database_url)
    sessions = session_factory(make_engine(settings.database_url))
    app = make_celery(settings)
    recorder = Recorder("reaper")
    deficit = Deficit(settings.republish_after)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("reaper %s: a pass every %.1f s", recorder.id, settings.reaper_interval)
    while not stop.is_set():
        try:
            done, seconds = run_pass(sessions, app, settings, deficit, recorder)
            if done:
                log.info("%s in %.3f s", dict(done), seconds)
        except Exception:
            log.exception("reaper pass failed; trying again in %.1f s", settings.reaper_interval)
        stop.wait(settings.reaper_interval)


if __name__ == "__main__":
    main()
