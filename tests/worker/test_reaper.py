"""The reaper recovers what the broker loses — expired leases, unpublished jobs, lost messages,
poison jobs — and republishes nothing the broker still holds, on the embedded broker and on
Redis, with no worker consuming: the broker's messages are read and deleted directly."""

from __future__ import annotations

import base64
import copy
import json
import sqlite3
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from models import lifecycle, outbox
from models.tables import Job, JobAttempt
from settings import Settings
from tests.factories import XOR_JOB
from worker import reaper
from worker.celery_app import QUEUE, make_celery, publish_many, release_broker
from worker.reaper import Deficit, purge_consumed, reap_once
from worker.runner import Runner

N = 12
WINDOW = 0.3  # seconds a deficit must last (the reaper's is DELTAFLOW_REPUBLISH_AFTER)


@pytest.fixture(params=["embedded", "postgresql+redis"])
def settings(request) -> Settings:
    """Each set-up: a SQLite file with the embedded broker beside it, or PostgreSQL + Redis."""
    knobs = {"flush_interval": 1e-6, "lease_ttl": 30, "max_attempts": 3, "republish_after": 60}
    if request.param == "embedded":
        return Settings(database_url=request.getfixturevalue("migrated_sqlite_url"), **knobs)
    url = request.getfixturevalue("migrated_postgres_url")
    return Settings(database_url=url, broker_url=request.getfixturevalue("redis_url"), **knobs)


@pytest.fixture
def app(settings):
    app = make_celery(settings)
    yield app
    release_broker(app, settings)


def _job_id(message: bytes | str) -> str:
    """The job a Celery message is about: the first argument in its body."""
    args, _kwargs, _embed = json.loads(base64.b64decode(json.loads(message)["body"]))
    return args[0]


def waiting(s: Settings) -> Counter:
    """Messages waiting in the broker, counted by job, read from the broker itself."""
    if s.embedded_broker:
        with sqlite3.connect(s.broker_file) as db:
            rows = db.execute("SELECT payload FROM kombu_message WHERE visible = 1").fetchall()
        return Counter(_job_id(payload) for (payload,) in rows)
    client = redis.Redis.from_url(s.broker_url)
    try:
        return Counter(_job_id(m) for m in client.lrange(QUEUE, 0, -1))
    finally:
        client.close()


def lose_oldest(s: Settings, k: int) -> None:
    """Delete the `k` messages a worker would take first, as a broker losing them would."""
    if s.embedded_broker:
        with sqlite3.connect(s.broker_file) as db:
            db.execute(
                "DELETE FROM kombu_message WHERE id IN "
                "(SELECT id FROM kombu_message WHERE visible = 1 ORDER BY timestamp, id LIMIT ?)",
                (k,),
            )
        return
    client = redis.Redis.from_url(s.broker_url)
    try:
        assert len(client.rpop(QUEUE, k)) == k  # Celery's consumer pops from the right
    finally:
        client.close()


def submit(settings: Settings, n: int, **changes) -> list[str]:
    """`n` jobs through the API, which publishes them."""
    with TestClient(create_app(settings.model_copy(update=changes))) as client:
        return [
            client.post("/v1/jobs", json=copy.deepcopy(XOR_JOB) | {"seed": i}).json()["id"]
            for i in range(n)
        ]


def age(sessions, seconds: float = 3600) -> None:
    """Make every publish `seconds` older, past the republish grace."""
    with sessions.begin() as s:
        for job in s.scalars(select(Job).where(Job.published_at.is_not(None))):
            job.published_at -= timedelta(seconds=seconds)  # in order: the oldest stay oldest


def passes(sessions, app, settings, deficit: Deficit, n: int) -> list[dict]:
    """`n` passes half a window apart, as the reaper makes several while a deficit lasts."""
    done = []
    for i in range(n):
        if i:
            time.sleep(WINDOW / 2)
        done.append(dict(reap_once(sessions, app, settings, deficit)))
    return done


def test_a_deep_queue_is_never_republished(sessions, app, settings):
    ids = submit(settings, N)
    deficit = Deficit(WINDOW)
    assert passes(sessions, app, settings, deficit, 4) == [{}] * 4
    age(sessions)  # every job waited longer than the grace: its message is still there
    assert passes(sessions, app, settings, deficit, 4) == [{}] * 4
    assert waiting(settings) == Counter(ids)


def test_the_messages_the_broker_lost_are_republished_once(sessions, app, settings):
    ids = submit(settings, N)
    deficit = Deficit(WINDOW)
    lose_oldest(settings, 5)
    age(sessions)
    assert passes(sessions, app, settings, deficit, 1) == [{}]  # missing now: maybe in flight
    time.sleep(WINDOW)
    assert passes(sessions, app, settings, deficit, 2) == [{"republished": 5}, {}]  # lost
    assert waiting(settings) == Counter(ids)


def test_messages_missing_for_a_moment_are_not_taken_for_lost(sessions, app, settings):
    waited = submit(settings, N)
    age(sessions)
    deficit = Deficit(WINDOW)
    in_flight = submit(settings, 4, fault_drop_publish=True)  # committed, publish under way
    assert passes(sessions, app, settings, deficit, 1) == [{}]
    assert publish_many(app, list(map(uuid.UUID, in_flight))) == 4  # the publish ends
    assert passes(sessions, app, settings, deficit, 4) == [{}] * 4
    assert waiting(settings) == Counter(waited + in_flight)


def test_a_loss_waits_out_the_republish_grace(sessions, app, settings):
    ids = submit(settings, N)
    deficit = Deficit(WINDOW)
    lose_oldest(settings, 3)
    assert passes(sessions, app, settings, deficit, 4) == [{}] * 4  # published just now
    age(sessions)
    assert passes(sessions, app, settings, deficit, 2) == [{"republished": 3}, {}]
    assert waiting(settings) == Counter(ids)


def test_a_crash_between_commit_and_publish_is_recovered(sessions, app, settings):
    ids = submit(settings, N, fault_drop_publish=True)
    with sessions() as s:
        assert None not in s.scalars(select(Job.published_at)).all()  # as a crash leaves them
    assert waiting(settings) == Counter()
    deficit = Deficit(WINDOW)
    assert passes(sessions, app, settings, deficit, 4) == [{}] * 4
    age(sessions)
    assert passes(sessions, app, settings, deficit, 2) == [{"republished": N}, {}]
    assert waiting(settings) == Counter(ids)


def test_unpublished_jobs_are_published_at_the_next_pass(sessions, app, settings, make_job):
    published = submit(settings, 3)
    unsent = submit(settings, 2, fault_drop_publish=True)
    with sessions.begin() as s:
        outbox.unpublish(s, [uuid.UUID(job_id) for job_id in unsent])  # the publish failed
    unpublished = unsent + [str(make_job()) for _ in range(3)]  # stored without a publish
    deficit = Deficit(WINDOW)
    assert passes(sessions, app, settings, deficit, 3) == [{"republished": 5}, {}, {}]
    assert waiting(settings) == Counter(published + unpublished)
    with sessions() as s:
        assert None not in s.scalars(select(Job.published_at)).all()


def test_a_pass_publishes_within_its_budget(sessions, app, settings, make_job, monkeypatch):
    def slow(app, job_ids):  # a busy broker: the first chunk spends the pass's budget
        time.sleep(0.05)
        return publish_many(app, job_ids)

    monkeypatch.setattr(reaper, "CHUNK", 4)
    monkeypatch.setattr(reaper, "PUBLISH_SECONDS", 0.04)
    monkeypatch.setattr(reaper, "publish_many", slow)
    ids = [str(make_job()) for _ in range(10)]
    deficit = Deficit(WINDOW)
    published = [{"republished": 4}, {"republished": 4}, {"republished": 2}, {}]
    assert passes(sessions, app, settings, deficit, 4) == published
    assert waiting(settings) == Counter(ids)


def _attempts(sessions, job_id) -> list[tuple[str | None, bool]]:
    with sessions() as s:
        rows = s.execute(
            select(JobAttempt.reason, JobAttempt.ended_at.is_not(None))
            .where(JobAttempt.job_id == job_id)
            .order_by(JobAttempt.attempt)
        ).all()
    return [tuple(row) for row in rows]


def _claim_and_expire(sessions, settings, expire_lease, job_ids, times: int = 1) -> None:
    for _ in range(times):
        for job_id in job_ids:
            assert Runner(sessions, settings).claim(job_id) is not None
            expire_lease(job_id)


def test_expired_leases_are_requeued_or_given_up_in_one_pass(
    sessions, app, settings, make_job, expire_lease, monkeypatch
):
    monkeypatch.setattr(lifecycle, "CHUNK", 2)  # several IN-lists for the attempts closed
    alive, *lost = [make_job() for _ in range(4)]
    poison = [make_job() for _ in range(3)]
    Runner(sessions, settings).claim(alive)
    _claim_and_expire(sessions, settings, expire_lease, lost)
    _claim_and_expire(sessions, settings, expire_lease, poison, times=settings.max_attempts)
    done = reap_once(sessions, app, settings, Deficit(WINDOW))
    assert done == {"requeued": 3, "failed": 3, "republished": 3}
    with sessions() as s:
        jobs = {job.id: job for job in s.scalars(select(Job))}
    assert jobs[alive].status == "running" and _attempts(sessions, alive) == [(None, False)]
    for job_id in lost:
        assert (jobs[job_id].status, jobs[job_id].attempt, jobs[job_id].lease_owner) == (
            "queued", 1, None,
        )  # fmt: skip
        assert _attempts(sessions, job_id) == [("lease expired", True)]
    for job_id in poison:
        assert jobs[job_id].status == "failed" and jobs[job_id].lease_owner is None
        assert jobs[job_id].error.startswith(f"gave up after {settings.max_attempts} attempts")
        assert _attempts(sessions, job_id) == [("lease expired", True)] * settings.max_attempts
    assert waiting(settings) == Counter(map(str, lost))
    assert Runner(sessions, settings).run(lost[0]) == "succeeded"


def test_consumed_messages_are_purged(migrated_sqlite_url):
    settings = Settings(database_url=migrated_sqlite_url)  # Redis deletes what it delivers
    submit(settings, 2)
    with sqlite3.connect(settings.broker_file) as db:
        db.execute(
            "UPDATE kombu_message SET visible = 0 WHERE id = (SELECT min(id) FROM kombu_message)"
        )
    assert purge_consumed(settings) == 1
    with sqlite3.connect(settings.broker_file) as db:
        assert db.execute("SELECT visible FROM kombu_message").fetchall() == [(1,)]
