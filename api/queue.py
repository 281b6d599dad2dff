"""The API's one door to the workers: it publishes job ids by task name through the Celery app
(worker.celery_app), and never imports the worker's tasks or runner (DESIGN §1).

The job row is the outbox: rows are committed marked published, then published; a job whose
publish failed is unmarked (api/submission.py), and the reaper publishes it.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid

from settings import Settings
from worker.celery_app import make_celery, publish_many, release_broker

log = logging.getLogger(__name__)


class Queue:
    """Publishes to the broker `settings` name; building it connects to nothing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._celery = make_celery(settings)

    def publish(self, job_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Tell the workers about committed jobs; returns those that could not be published (a
        failure is logged; the caller unmarks them for the reaper). DELTAFLOW_FAULT_DROP_PUBLISH
        (a test hook) publishes nothing and reports no failure, as a crash right after the
        commit would: the jobs stay marked published, and the reaper finds their messages
        missing from the broker."""
        if self.settings.fault_drop_publish:
            log.warning("fault hook: %d committed job(s) left unpublished", len(job_ids))
            return []
        return job_ids[publish_many(self._celery, job_ids) :]

    def check(self) -> None:
        """Raise unless the broker answers (readiness)."""
        if self.settings.embedded_broker:
            uri = f"file:{self.settings.broker_file}?mode=ro"
            with sqlite3.connect(uri, uri=True, timeout=2) as db:
                db.execute("SELECT count(*) FROM kombu_queue").fetchone()
            return
        with self._celery.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    def close(self) -> None:
        """Release the broker connections (and the embedded broker's file) this process holds."""
        release_broker(self._celery, self.settings)
