"""Recovery in one process: attempts are recorded, a stopping worker releases its job, and a
flush survives the database going away."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from models.db import make_engine, session_factory
from models.lineage import latest_checkpoint
from models.tables import Job, JobAttempt
from settings import Settings
from tests.factories import parameters, reference, store_job
from tests.worker.conftest import XOR
from tests.worker.tcp_proxy import Proxy
from tests.worker.test_runner import Crash, CrashingRunner, _epochs, _final_parameters
from worker.reaper import reap_once
from worker.runner import Outcome, Runner

LONG = XOR | {"epochs": 3000, "batch_size": 2, "snapshot_every": 250}


@pytest.fixture
def settings(settings):
    """A flush every 20 ms rather than after every epoch: LONG's 3,000 epochs would be 3,000
    commits, and a crash, a release and a resume each need a few of them."""
    return settings.model_copy(update={"flush_interval": 0.02})


def _attempts(sessions, job_id) -> list[JobAttempt]:
    with sessions() as s:
        return list(
            s.scalars(
                select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.attempt)
            )
        )


def test_attempts_are_recorded_with_their_reasons(sessions, settings, make_job, expire_lease):
    job_id = make_job(LONG)
    settings = settings.model_copy(update={"checkpoint_interval": 0})  # one at every flush
    with pytest.raises(Crash):
        CrashingRunner(sessions, settings, after_flushes=4).run(job_id)
    left_at = _epochs(sessions, job_id)[-1]
    expire_lease(job_id)
    assert Runner(sessions, settings).run(job_id) == "succeeded"
    first, second = _attempts(sessions, job_id)
    assert (first.attempt, first.reason) == (1, "lease expired")
    assert (second.attempt, second.reason) == (2, "succeeded")
    assert (first.start_epoch, second.start_epoch) == (0, left_at)  # resumed from its checkpoint
    assert second.started_at >= first.ended_at
    assert first.blas_threads == settings.blas_threads


def _run_in_thread(runner: Runner, job_id) -> dict:
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("outcome", runner.run(job_id)))
    thread.start()
    out["thread"] = thread
    return out


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_stopping_worker_releases_its_job(sessions, settings, make_job):
    job_id = make_job(LONG)
    runner = Runner(sessions, settings)
    running = _run_in_thread(runner, job_id)
    _wait_for(lambda: _epochs(sessions, job_id))
    runner.stopping.set()
    running["thread"].join(30)
    assert running["outcome"] == Outcome.RELEASED == "released: the worker was shutting down"
    with sessions() as s:
        job = s.get_one(Job, job_id)
        checkpoint = latest_checkpoint(s, job_id)
    assert (job.status, job.attempt, job.lease_owner, job.published_at) == ("queued", 0, None, None)
    assert checkpoint.epoch == job.epochs_done == _epochs(sessions, job_id)[-1] < 3000
    assert _attempts(sessions, job_id)[0].reason == "released: the worker was shutting down"
    assert Runner(sessions, settings).run(job_id) == "succeeded"  # at once: no lease to expire
    assert _epochs(sessions, job_id) == list(range(1, 3001))
    want = parameters(reference(LONG))
    assert _final_parameters(sessions, job_id, LONG) == want


def test_the_reaper_closes_the_attempt_of_a_dead_worker(sessions, settings, make_job, expire_lease):
    from worker.celery_app import make_celery

    job_id = make_job()
    Runner(sessions, settings).claim(job_id)
    expire_lease(job_id)
    app = make_celery(settings.model_copy(update={"broker_url": "memory://"}))
    reap_once(sessions, app, settings)
    (attempt,) = _attempts(sessions, job_id)
    assert attempt.reason == "lease expired"
    assert attempt.ended_at is not None


@pytest.fixture
def cut_database(migrated_postgres_url):
    """A PostgreSQL database reached through a proxy the test can cut."""
    proxy = Proxy(5432)
    url = migrated_postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    engine = make_engine(url)
    yield proxy, url, session_factory(engine)
    proxy.restore()
    engine.dispose()


def test_a_flush_outlives_a_database_outage(cut_database):
    proxy, url, sessions = cut_database
    settings = Settings(database_url=url, flush_interval=0.05, lease_ttl=60)
    job_id = store_job(sessions, LONG | {"name": "outage"})
    running = _run_in_thread(Runner(sessions, settings), job_id)
    _wait_for(lambda: _epochs(sessions, job_id))
    proxy.cut()
    time.sleep(1.5)  # several flushes fail while it is down
    assert running["thread"].is_alive()
    proxy.restore()
    running["thread"].join(60)
    assert running["outcome"] == "succeeded"
    assert _epochs(sessions, job_id) == list(range(1, 3001))
    want = parameters(reference(LONG))
    assert _final_parameters(sessions, job_id, LONG) == want
