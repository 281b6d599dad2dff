"""The reaper recovers what the broker loses: expired leases, unpublished jobs, poison jobs."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import update

from models.base import utcnow
from models.tables import Job
from settings import Settings
from worker.celery_app import make_celery, prepare_broker
from worker.reaper import purge_consumed, reap_once
from worker.runner import Runner


@pytest.fixture
def broker(settings, tmp_path):
    s = settings.model_copy(update={"home": tmp_path, "republish_after": 60})
    app = make_celery(s)
    prepare_broker(app, s)
    return s, app


def _messages(s: Settings) -> list[tuple[str, int]]:
    with sqlite3.connect(s.broker_file) as db:
        return db.execute("SELECT payload, visible FROM kombu_message").fetchall()


def _job(sessions, job_id) -> Job:
    with sessions() as s:
        return s.get_one(Job, job_id)


def test_an_unpublished_job_is_published_once(sessions, make_job, broker):
    s, app = broker
    job_id = make_job()
    assert reap_once(sessions, app, s) == {"republished": 1}
    assert _job(sessions, job_id).published_at is not None
    assert len(_messages(s)) == 1
    assert str(job_id) in _messages(s)[0][0]
    assert reap_once(sessions, app, s) == {}  # published recently: left alone


def test_a_stale_publish_is_repeated(sessions, make_job, broker):
    s, app = broker
    job_id = make_job()
    with sessions.begin() as db:
        db.execute(
            update(Job).where(Job.id == job_id).values(published_at=utcnow() - timedelta(hours=1))
        )
    assert reap_once(sessions, app, s) == {"republished": 1}


def test_an_expired_lease_is_requeued_and_published(sessions, make_job, expire_lease, broker):
    s, app = broker
    job_id = make_job()
    Runner(sessions, s).claim(job_id)
    assert reap_once(sessions, app, s)["requeued"] == 0  # lease still valid
    expire_lease(job_id)
    assert reap_once(sessions, app, s) == {"requeued": 1, "republished": 1}
    job = _job(sessions, job_id)
    assert (job.status, job.attempt, job.lease_owner) == ("queued", 1, None)
    assert Runner(sessions, s).run(job_id) == "succeeded"


def test_a_poison_job_fails_after_max_attempts(sessions, make_job, expire_lease, broker):
    s, app = broker
    job_id = make_job()
    for _ in range(s.max_attempts):
        assert Runner(sessions, s).claim(job_id) is not None
        expire_lease(job_id)
        reap_once(sessions, app, s)
    job = _job(sessions, job_id)
    assert job.status == "failed"
    assert job.attempt == s.max_attempts
    assert job.error.startswith(f"gave up after {s.max_attempts} attempts")


def test_consumed_messages_are_purged(sessions, make_job, broker):
    s, app = broker
    make_job()
    make_job()
    reap_once(sessions, app, s)
    with sqlite3.connect(s.broker_file) as db:
        db.execute(
            "UPDATE kombu_message SET visible = 0 WHERE id = (SELECT min(id) FROM kombu_message)"
        )
    purge_consumed(s)
    assert [visible for _, visible in _messages(s)] == [1]
