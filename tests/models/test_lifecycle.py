"""Every transition of models/lifecycle.py on both databases: the legal ones change exactly what
they say, and an illegal one — a guard that matches no row — changes nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from models import lifecycle, outbox
from models.base import utcnow
from models.lifecycle import LeaseLost
from models.status import TERMINAL, JobStatus
from models.tables import Batch, Dataset, Job, JobAttempt
from tests.factories import sessions_on

TTL, MAX_ATTEMPTS = 30.0, 2


@pytest.fixture
def sessions(migrated_database_url):
    with sessions_on(migrated_database_url) as found:
        yield found


@pytest.fixture
def new_job(sessions):
    """A queued job (in a batch), as the API stores one."""
    with sessions.begin() as s:
        dataset = Dataset(name="d", sha256=uuid.uuid4().hex * 2, n_samples=1, n_features=1,
                          n_outputs=1)  # fmt: skip
        batch = Batch(name="b", base={}, grid={})
        s.add_all([dataset, batch])
        s.flush()
        dataset_id, batch_id = dataset.id, batch.id

    def make() -> uuid.UUID:
        with sessions.begin() as s:
            job = Job(name="j", tags={}, spec={}, dataset_id=dataset_id, batch_id=batch_id,
                      epochs_total=10)  # fmt: skip
            s.add(job)
        return job.id

    return make


def _claim(sessions, job_id, worker="w1"):
    with sessions.begin() as s:
        claimed = lifecycle.claim(s, job_id, worker, TTL, MAX_ATTEMPTS, 1)
        return None if claimed is None else claimed.lease


def _job(sessions, job_id) -> Job:
    with sessions() as s:
        return s.get_one(Job, job_id)


def _attempts(sessions, job_id) -> list[tuple[int, str | None]]:
    with sessions() as s:
        rows = s.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id)).all()
        return sorted((a.attempt, a.reason) for a in rows)


def _expire(sessions, job_id) -> None:
    with sessions.begin() as s:
        past = utcnow() - timedelta(seconds=1)
        s.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=past))


def test_the_terminal_set_is_the_enums(sessions):
    assert {s for s in JobStatus if s.terminal} == TERMINAL
    assert {JobStatus.QUEUED, JobStatus.RUNNING}.isdisjoint(TERMINAL)


def test_claim_takes_a_queued_job_once(sessions, new_job):
    job_id = new_job()
    lease = _claim(sessions, job_id)
    assert (lease.attempt, lease.number) == (1, 1)
    job = _job(sessions, job_id)
    assert (job.status, job.lease_owner, job.attempt) == (JobStatus.RUNNING, lease.owner, 1)
    assert isinstance(job.status, JobStatus) and job.started_at is not None
    assert _claim(sessions, job_id, "w2") is None  # running, lease alive: nothing to take
    assert _job(sessions, job_id).lease_owner == lease.owner
    assert _attempts(sessions, job_id) == [(1, None)]


def test_claim_takes_over_an_expired_lease_while_attempts_remain(sessions, new_job):
    job_id = new_job()
    _claim(sessions, job_id)
    _expire(sessions, job_id)
    second = _claim(sessions, job_id, "w2")
    assert (second.attempt, second.number) == (2, 2)
    assert _attempts(sessions, job_id) == [(1, lifecycle.LEASE_EXPIRED), (2, None)]
    _expire(sessions, job_id)
    assert _claim(sessions, job_id, "w3") is None  # MAX_ATTEMPTS used: only give_up remains
    assert _job(sessions, job_id).lease_owner == second.owner


@pytest.mark.parametrize(
    ("end", "status", "reason"),
    [
        (lambda s, lease: lifecycle.succeed(s, lease, 0.25, {}), JobStatus.SUCCEEDED, "succeeded"),
        (lambda s, lease: lifecycle.fail(s, lease, "bad data", {}), JobStatus.FAILED, "bad data"),
        (lambda s, lease: lifecycle.cancel(s, lease, {}), JobStatus.CANCELLED, "cancelled"),
    ],
)
def test_a_worker_ends_its_job_only_under_its_own_lease(sessions, new_job, end, status, reason):
    job_id = new_job()
    stale = _claim(sessions, job_id)
    _expire(sessions, job_id)
    lease = _claim(sessions, job_id, "w2")
    with pytest.raises(LeaseLost), sessions.begin() as s:
        end(s, stale)  # the first worker lost its lease: its write is refused
    assert _job(sessions, job_id).status == JobStatus.RUNNING
    with sessions.begin() as s:
        end(s, lease)
    job = _job(sessions, job_id)
    assert (job.status, job.lease_owner, job.lease_expires_at) == (status, None, None)
    assert job.finished_at is not None
    assert job.final_loss == (0.25 if status == JobStatus.SUCCEEDED else None)
    assert job.error == ("bad data" if status == JobStatus.FAILED else None)
    assert _attempts(sessions, job_id)[-1] == (2, reason)
    with pytest.raises(LeaseLost), sessions.begin() as s:
        end(s, lease)  # it has ended: nothing to end again


def test_renew_extends_the_lease_records_progress_and_reports_cancellation(sessions, new_job):
    job_id = new_job()
    lease = _claim(sessions, job_id)
    before = _job(sessions, job_id).lease_expires_at
    with sessions.begin() as s:
        assert lifecycle.renew(s, lease, TTL * 2, {"epochs_done": 4}) is False
    job = _job(sessions, job_id)
    assert job.epochs_done == 4 and job.lease_expires_at > before
    with sessions.begin() as s:
        assert lifecycle.request_cancel(s, job_id)
    assert _job(sessions, job_id).status == JobStatus.RUNNING  # flagged, not ended
    with sessions.begin() as s:
        assert lifecycle.renew(s, lease, TTL, {}) is True
    other = lifecycle.Lease(job_id, "someone-else", lease.attempt, lease.number)
    with pytest.raises(LeaseLost), sessions.begin() as s:
        lifecycle.renew(s, other, TTL, {"epochs_done": 9})
    assert _job(sessions, job_id).epochs_done == 4


def test_release_queues_the_job_again_and_hands_the_attempt_back(sessions, new_job):
    job_id = new_job()
    lease = _claim(sessions, job_id)
    with sessions.begin() as s:
        s.execute(update(Job).where(Job.id == job_id).values(published_at=utcnow()))
        lifecycle.release(s, lease, {})
    job = _job(sessions, job_id)
    assert (job.status, job.attempt, job.lease_owner, job.published_at) == (
        JobStatus.QUEUED, 0, None, None,
    )  # fmt: skip
    assert _attempts(sessions, job_id) == [(1, lifecycle.RELEASED)]
    with pytest.raises(LeaseLost), sessions.begin() as s:
        lifecycle.release(s, lease, {})  # queued now: nothing of this lease to release


def test_request_cancel_ends_a_queued_job_at_once_and_refuses_an_ended_one(sessions, new_job):
    job_id = new_job()
    with sessions.begin() as s:
        assert lifecycle.request_cancel(s, job_id)
    job = _job(sessions, job_id)
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None
    first = job.cancel_requested_at
    with sessions.begin() as s:
        assert not lifecycle.request_cancel(s, job_id)
    assert _job(sessions, job_id).cancel_requested_at == first
    assert _claim(sessions, job_id) is None  # an ended job is never claimed


def test_the_reaper_requeues_or_gives_up_only_on_expired_leases(sessions, new_job):
    alive, lost, last = new_job(), new_job(), new_job()
    for job_id in (alive, lost, last):
        _claim(sessions, job_id)
    now = utcnow()
    with sessions.begin() as s:
        assert lifecycle.give_up(s, now, MAX_ATTEMPTS) == []  # every lease is alive
        assert lifecycle.requeue_expired(s, now) == []
    _expire(sessions, last)
    _claim(sessions, last)  # its second and last attempt
    for job_id in (lost, last):
        _expire(sessions, job_id)
    now = utcnow()
    with sessions.begin() as s:
        assert lifecycle.give_up(s, now, MAX_ATTEMPTS) == [last]  # 2 of 2 attempts used
        assert lifecycle.requeue_expired(s, now) == [lost]  # 1 of 2
        assert lifecycle.requeue_expired(s, now) == []  # queued now: nothing to requeue
    job = _job(sessions, lost)
    assert (job.status, job.lease_owner, job.published_at) == (JobStatus.QUEUED, None, None)
    assert _attempts(sessions, lost) == [(1, lifecycle.LEASE_EXPIRED)]
    job = _job(sessions, last)
    assert job.status == JobStatus.FAILED and "gave up after 2 attempts" in job.error
    assert job.lease_owner is None
    assert _attempts(sessions, last) == [
        (1, lifecycle.LEASE_EXPIRED), (2, lifecycle.LEASE_EXPIRED),
    ]  # fmt: skip
    assert _job(sessions, alive).status == JobStatus.RUNNING
    assert _attempts(sessions, alive) == [(1, None)]


def test_jobs_are_taken_for_publishing_once_oldest_first(sessions, new_job):
    first, second, third, running = (new_job() for _ in range(4))
    _claim(sessions, running)
    now = utcnow()
    with sessions.begin() as s:
        # RETURNING keeps no order: the oldest are taken, in some order.
        assert set(outbox.take_unpublished(s, 2, now)) == {first, second}
        assert outbox.take_unpublished(s, 2, now) == [third]
        assert outbox.take_unpublished(s, 2, now) == []  # a running job is not waiting
        assert outbox.published_waiting(s) == 3
    with sessions.begin() as s:
        for age, job_id in enumerate((third, first, second), start=1):
            past = now - timedelta(minutes=age)
            s.execute(update(Job).where(Job.id == job_id).values(published_at=past))
    later = utcnow()
    with sessions.begin() as s:
        stale = now - timedelta(seconds=90)  # second and first, not third
        assert outbox.take_stale(s, 1, later, stale) == [second]
        assert outbox.take_stale(s, 5, later, stale) == [first]
        assert outbox.take_stale(s, 5, later, stale) == []  # published again just now
        outbox.unpublish(s, [first, running])
        assert outbox.published_waiting(s) == 2
        assert outbox.take_unpublished(s, 5, later) == [first]  # not the running one
    assert _job(sessions, second).published_at == later


def test_retry_queues_failed_and_cancelled_jobs_of_the_batch_only(sessions, new_job):
    failed, cancelled, succeeded, queued = (new_job() for _ in range(4))
    for job_id, end in (
        (failed, lambda s, lease: lifecycle.fail(s, lease, "diverged", {})),
        (succeeded, lambda s, lease: lifecycle.succeed(s, lease, 0.1, {})),
    ):
        lease = _claim(sessions, job_id)
        with sessions.begin() as s:
            end(s, lease)
    with sessions.begin() as s:
        lifecycle.request_cancel(s, cancelled)
        batch_id = s.get_one(Job, failed).batch_id
        requeued = lifecycle.retry(s, batch_id)
    assert sorted(requeued, key=str) == sorted([failed, cancelled], key=str)
    for job_id in (failed, cancelled):
        job = _job(sessions, job_id)
        assert (job.status, job.error, job.attempt, job.finished_at) == (
            JobStatus.QUEUED, None, 0, None,
        )  # fmt: skip
        assert job.cancel_requested_at is None
        assert job.published_at is not None  # the caller publishes them after the commit
    assert _job(sessions, succeeded).status == JobStatus.SUCCEEDED
    assert _job(sessions, queued).status == JobStatus.QUEUED
