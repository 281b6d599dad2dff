"""The Celery app (DESIGN §5). The API imports this module only to publish by task name.

JSON only, late acks, rejection on a lost worker, prefetch 1, no result backend: the job row is
the result and the source of truth. Without DELTAFLOW_BROKER_URL the broker is embedded: kombu's
SQLAlchemy transport on its own SQLite file (worker/embedded_broker.py).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, celeryd_init
from celery.utils.log import get_multiprocessing_logger
from kombu import Queue
from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES

from settings import Settings, get_settings
from worker import logs

TASK_TRAIN = "deltaflow.train"
QUEUE = "deltaflow"
EMBEDDED_SCHEME = "deltaflow-sqlite"
log = logging.getLogger(__name__)


TRANSPORT_ALIASES[EMBEDDED_SCHEME] = "worker.embedded_broker:Transport"


def broker_url(settings: Settings) -> str:
    if settings.broker_url:
        return settings.broker_url
    return f"{EMBEDDED_SCHEME}+sqlite:///{settings.broker_file.resolve()}"


def make_celery(settings: Settings | None = None) -> Celery:
    """A Celery app for `settings`. Building it connects to nothing."""
    settings = settings or get_settings()
    app = Celery("deltaflow", broker=broker_url(settings), include=["worker.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        task_queues=[Queue(QUEUE, routing_key=QUEUE)],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # The embedded transport has no broadcast: no remote control, no events.
        worker_enable_remote_control=not settings.embedded_broker,
        broker_transport_options=_transport_options(settings),
    )
    return app


def _transport_options(settings: Settings) -> dict:
    if settings.embedded_broker:
        return {"connect_args": {"timeout": 30}}
    # A job may outlive any visibility timeout; the lease, not the broker, decides who runs
    # it, so a redelivery is harmless (DESIGN §5).
    return {"visibility_timeout": settings.broker_visibility_timeout}


@celeryd_init.connect
def _json_early_warnings(**_kwargs) -> None:
    """The worker's first signal, sent before it checks its privileges and warns."""
    if get_settings().log_format == "json":
        logs.capture_early_warnings()


@after_setup_logger.connect
def _json_logs(logger, **_kwargs) -> None:
    """DELTAFLOW_LOG_FORMAT=json: the handlers Celery just set up (inherited by its pool
    processes) write JSON lines; so does the multiprocessing logger, for the pool's errors."""
    if get_settings().log_format == "json":
        logs.end_early_capture()
        logs.use_json(logger)
        logs.use_json(get_multiprocessing_logger())


@after_setup_task_logger.connect
def _json_task_logs(logger, **_kwargs) -> None:
    if get_settings().log_format == "json":
        logs.use_json(logger)


def publish(app: Celery, job_id: uuid.UUID) -> None:
    """Tell the workers that job `job_id` has work."""
    app.send_task(TASK_TRAIN, args=[str(job_id)], queue=QUEUE)


def publish_many(app: Celery, job_ids: Sequence[uuid.UUID]) -> int:
    """Publish jobs in order through one producer; returns how many were sent. The first
    failure is logged and ends it: the broker is down, and the rest would fail the same way."""
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for job_id in job_ids:
                app.send_task(TASK_TRAIN, args=[str(job_id)], queue=QUEUE, producer=producer)
                sent += 1
    except Exception:
        log.exception("publishing failed after %d of %d job(s)", sent, len(job_ids))
    return sent


def queue_length(app: Celery) -> int:
    """Messages waiting in the broker's queue, not yet delivered: on Redis the length of its
    lists (one per priority), on the embedded broker its visible rows."""
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        try:
            return channel.queue_declare(queue=QUEUE, passive=True).message_count
        except ChannelError:  # Redis keeps no key for an empty list: no queue is no message
            return 0


def release_broker(app: Celery, settings: Settings) -> None:
    """Close `app`'s broker connections, and the embedded broker's cached SQLite engine."""
    url = app.connection_for_write().hostname  # a Connection object; nothing connects
    app.close()
    if settings.embedded_broker:
        from worker import embedded_broker

        embedded_broker.release(url)


def prepare_broker(app: Celery, settings: Settings) -> None:
    """Before workers start: the embedded broker's file in WAL mode and its queue declared
    once (two workers declaring it on a fresh file race on a UNIQUE constraint)."""
    if not settings.embedded_broker:
        return
    import sqlite3

    settings.broker_file.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(settings.broker_file, timeout=30) as db:
        db.execute("PRAGMA journal_mode=WAL")
    with app.connection_for_write() as conn:
        Queue(QUEUE, routing_key=QUEUE)(conn.default_channel).declare()
    release_broker(app, settings)


app = make_celery()
