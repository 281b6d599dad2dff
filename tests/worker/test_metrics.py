"""What workers and the reaper count, as /metrics reads it back, checked against SQL."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from api.metrics import exposition
from models.base import utcnow
from models.tables import Job, ProcessMetrics
from tests.factories import all_epochs
from worker.celery_app import make_celery
from worker.metrics import RETIRED, Recorder, histogram, retire
from worker.reaper import reap_once, record_pass
from worker.runner import Runner


def scrape(sessions, lease_ttl: float = 30) -> dict[str, dict]:
    """/metrics as the API builds it: family name → {sample name + labels: value}."""
    with sessions() as s:
        text = exposition(s, lease_ttl).decode()
    out: dict[str, dict] = {}
    for family in text_string_to_metric_families(text):
        samples = out.setdefault(family.name, {})
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


@pytest.fixture
def reaper(settings):
    # An in-memory broker: the reaper publishes for real, nobody consumes.
    return make_celery(settings.model_copy(update={"broker_url": "memory://"}))


def test_the_scrape_agrees_with_sql(sessions, settings, make_job, expire_lease, reaper):
    runner = Runner(sessions, settings)
    assert runner.run(make_job()) == "succeeded"
    assert runner.run(make_job(spec_override={"network": {"layers": [3, 4, 1]}})) == "failed"
    make_job()  # stays queued
    lost = make_job()
    Runner(sessions, settings).claim(lost)  # its worker dies without a flush
    expire_lease(lost)
    done = reap_once(sessions, reaper, settings)
    record_pass(sessions, Recorder("reaper"), done, utcnow() - timedelta(days=1))
    runner.metrics.save(sessions)  # what the heartbeat does once the worker is idle

    m = scrape(sessions)
    with sessions() as s:
        by_status = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        durations = all_epochs(s) / 1000.0
        epochs, seconds = len(durations), durations.sum()
        buckets = {le: int((durations <= le).sum()) for le in (1e-5, 1e-4, 1e-3, 1e-2)}
    assert by_status == {"succeeded": 1, "failed": 1, "queued": 2}
    for status in ("queued", "running", "succeeded", "failed", "cancelled"):
        assert m["deltaflow_jobs"][f"deltaflow_jobs{{status={status}}}"] == by_status.get(status, 0)
    assert m["deltaflow_queue_depth"]["deltaflow_queue_depth"] == 2
    assert epochs == 60
    assert m["deltaflow_epochs_trained"]["deltaflow_epochs_trained_total"] == epochs
    hist = m["deltaflow_epoch_duration_seconds"]
    assert hist["deltaflow_epoch_duration_seconds_count"] == epochs
    assert hist["deltaflow_epoch_duration_seconds_sum"] == pytest.approx(seconds)
    for le, count in buckets.items():
        assert hist[f"deltaflow_epoch_duration_seconds_bucket{{le={le}}}"] == count
    assert hist["deltaflow_epoch_duration_seconds_bucket{le=+Inf}"] == epochs
    flushes = m["deltaflow_flush_duration_seconds"]
    assert flushes["deltaflow_flush_duration_seconds_count"] >= 2  # at least one per job
    assert flushes["deltaflow_flush_duration_seconds_sum"] > 0
    actions = m["deltaflow_reaper_actions"]
    assert actions["deltaflow_reaper_actions_total{action=requeued}"] == done["requeued"] == 1
    assert actions["deltaflow_reaper_actions_total{action=republished}"] == 2
    assert actions["deltaflow_reaper_actions_total{action=failed}"] == 0
    # The runner that claimed `lost` never flushed: it wrote no row.
    assert m["deltaflow_workers"]["deltaflow_workers"] == 1
    assert m["deltaflow_reapers"]["deltaflow_reapers"] == 1
    with sessions.begin() as s:
        s.execute(update(ProcessMetrics).values(last_seen_at=utcnow() - timedelta(minutes=1)))
    assert scrape(sessions, lease_ttl=30)["deltaflow_workers"]["deltaflow_workers"] == 0


def test_a_flush_that_loses_its_lease_counts_nothing(sessions, settings, make_job, expire_lease):
    job_id = make_job()
    stale = Runner(sessions, settings)
    lease = stale.claim(job_id)
    expire_lease(job_id)
    winner = Runner(sessions, settings)
    winner.claim(job_id)
    assert stale.run_claimed(lease) == "lease lost"
    assert stale.metrics.saved == {}
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(ProcessMetrics)) == 0
    expire_lease(job_id)
    assert winner.run(job_id) == "succeeded"
    winner.metrics.save(sessions)  # flushes write the row at most once a second; then this
    assert scrape(sessions)["deltaflow_epochs_trained"]["deltaflow_epochs_trained_total"] == 60


def _totals(sessions) -> dict:
    m = scrape(sessions)
    hist, actions = m["deltaflow_epoch_duration_seconds"], m["deltaflow_reaper_actions"]
    return {
        "epochs": m["deltaflow_epochs_trained"]["deltaflow_epochs_trained_total"],
        "epoch_count": hist["deltaflow_epoch_duration_seconds_count"],
        "requeued": actions["deltaflow_reaper_actions_total{action=requeued}"],
    }


def test_rows_of_processes_long_gone_are_folded_and_the_sums_stay(sessions):
    old, alive, reaper = Recorder("worker"), Recorder("worker"), Recorder("reaper")
    old.save(sessions, {"epochs_trained": 5, "epoch_seconds": histogram([0.1] * 5)})
    alive.save(sessions, {"epochs_trained": 7, "epoch_seconds": histogram([2e-5] * 7)})
    reaper.save(sessions, {"reaper_actions": {"requeued": 3}})
    before = _totals(sessions)
    assert before == {"epochs": 12, "epoch_count": 12, "requeued": 3}
    with sessions.begin() as s:
        s.execute(
            update(ProcessMetrics)
            .where(ProcessMetrics.id.in_([old.id, reaper.id]))
            .values(last_seen_at=utcnow() - timedelta(days=2))
        )
        assert retire(s, utcnow() - timedelta(days=1)) == 2
    with sessions() as s:
        kinds = Counter(s.scalars(select(ProcessMetrics.kind)))
    assert kinds == {"worker": 1, RETIRED: 1}
    assert _totals(sessions) == before
    # A process folded while it was cut off comes back: it writes only what it counted since.
    old.save(sessions, {"epochs_trained": 1, "epoch_seconds": histogram([0.1])})
    assert _totals(sessions) == {"epochs": 13, "epoch_count": 13, "requeued": 3}
    with sessions.begin() as s:
        s.execute(update(ProcessMetrics).values(last_seen_at=utcnow() - timedelta(days=2)))
        assert retire(s, utcnow() - timedelta(days=1)) == 2  # into the existing RETIRED row
    assert _totals(sessions) == {"epochs": 13, "epoch_count": 13, "requeued": 3}
