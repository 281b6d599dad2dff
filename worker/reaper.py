"""The reaper: recovers what the broker loses (DESIGN §5).

Each pass, in one transaction per job: a running job whose lease expired is queued again (or
failed once max_attempts claims were used: models/lifecycle.py); a queued job never published,
or published longer ago than `republish_after`, is published again — the job row is the outbox,
so a crash between commit and publish loses nothing. On the embedded broker it also deletes
consumed messages, which kombu never does. It counts what it did in its process_metrics row
(worker/metrics.py), and folds the rows of processes gone for a day into one.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter
from datetime import datetime, timedelta

from celery import Celery
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from models import lifecycle
from models.base import utcnow
from models.db import make_engine, session_factory
from models.schema import exit_unless_usable
from models.status import JobStatus
from settings import Settings, get_settings
from worker import logs
from worker.celery_app import make_celery, publish
from worker.metrics import Recorder, retire

log = logging.getLogger("worker.reaper")  # not __main__ under python -m
RETIRE_AFTER = timedelta(days=1)  # a process row unseen this long is folded into "retired"


def reap_once(sessions: sessionmaker[Session], app: Celery, settings: Settings) -> Counter:
    """One pass; returns how many jobs were requeued, failed and republished."""
    done: Counter = Counter()
    now = utcnow()
    with sessions.begin() as s:
        expired = lifecycle.expired_leases(s, now)
    for job_id in expired:
        with sessions.begin() as s:
            if lifecycle.give_up(s, job_id, now, settings.max_attempts):
                done[JobStatus.FAILED] += 1
            elif lifecycle.requeue_expired(s, job_id, now):
                done["requeued"] += 1
    with sessions.begin() as s:
        queued = lifecycle.unpublished(s, now - timedelta(seconds=settings.republish_after))
    for job_id in queued:
        publish(app, job_id)
        with sessions.begin() as s:
            lifecycle.mark_published(s, [job_id])
        done["republished"] += 1
    return done


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
    sessions: sessionmaker[Session], recorder: Recorder, done: Counter, retire_before: datetime
) -> None:
    """Count a pass's work in the reaper's row, and fold long-gone processes' rows, in one
    transaction (the row's last_seen_at says the reaper is alive)."""
    actions = {"requeued": 0, JobStatus.FAILED: 0, "republished": 0, "purged": 0} | dict(done)
    recorder.save(sessions, {"reaper_actions": actions}, also=lambda s: retire(s, retire_before))


def main() -> None:
    """Run the reaper until SIGTERM or SIGINT (`python -m worker.reaper`)."""
    settings = get_settings()
    logs.configure(settings.log_format, "%(asctime)s reaper %(message)s")
    exit_unless_usable(settings.database_url)
    sessions = session_factory(make_engine(settings.database_url))
    app = make_celery(settings)
    recorder = Recorder("reaper")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("reaper %s: a pass every %.1f s", recorder.id, settings.reaper_interval)
    while not stop.is_set():
        try:
            done = reap_once(sessions, app, settings)
            done["purged"] += purge_consumed(settings)
            if +done:
                log.info("%s", dict(+done))
            record_pass(sessions, recorder, done, utcnow() - RETIRE_AFTER)
        except Exception:
            log.exception("reaper pass failed; trying again in %.1f s", settings.reaper_interval)
        stop.wait(settings.reaper_interval)


if __name__ == "__main__":
    main()
