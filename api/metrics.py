"""/metrics: Prometheus families built at scrape time from the database.

The API, the workers (on any host) and the reaper are separate processes, so the API keeps no
registry of its own: jobs by status and the queue depth come from one GROUP BY on `jobs`, and
what workers and the reaper counted comes from their `process_metrics` rows (worker/metrics.py
writes them), summed — two queries, whichever API process is scraped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.status import JobStatus
from models.tables import Job, ProcessMetrics, add_counters

# worker/reaper.py's actions: jobs requeued or given up on (failed) after a lost lease,
# messages it published (jobs never published, or whose message the broker lost), and consumed
# messages purged.
REAPER_ACTIONS = ("requeued", JobStatus.FAILED, "republished", "purged")


class ServiceCollector(Collector):
    """The whole service's metrics, read with `session` at each collect()."""

    def __init__(self, session: Session, lease_ttl: float) -> None:
        self.session = session
        self.lease_ttl = lease_ttl

    def collect(self) -> Iterator[Metric]:
        s = self.session
        by_status = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        rows = s.execute(
            select(ProcessMetrics.kind, ProcessMetrics.last_seen_at, ProcessMetrics.counters)
        ).all()
        jobs = GaugeMetricFamily("deltaflow_jobs", "Jobs by status.", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status], by_status.get(status, 0))
        yield jobs
        queued = by_status.get(JobStatus.QUEUED, 0)
        yield GaugeMetricFamily("deltaflow_queue_depth", "Jobs waiting for a worker.", queued)
        seen_after = utcnow() - timedelta(seconds=self.lease_ttl)
        alive = Counter(row.kind for row in rows if row.last_seen_at >= seen_after)
        yield GaugeMetricFamily(
            "deltaflow_workers", "Worker processes seen within a lease TTL.", alive["worker"]
        )
        yield GaugeMetricFamily(
            "deltaflow_reapers", "Reaper processes seen within a lease TTL.", alive["reaper"]
        )
        total: dict[str, Any] = {}
        for row in rows:
            total = add_counters(total, row.counters)
        yield from _counted(total)


def _counted(total: dict[str, Any]) -> Iterator[Metric]:
    """The families of what workers and reapers counted (worker/metrics.py's names)."""
    yield CounterMetricFamily(
        "deltaflow_epochs_trained", "Epochs trained and stored.", total.get("epochs_trained", 0)
    )
    yield _histogram(
        "deltaflow_epoch_duration_seconds", "Time of one epoch.", total.get("epoch_seconds")
    )
    yield _histogram(
        "deltaflow_flush_duration_seconds",
        "Time of one flush: a worker's transaction of epochs, snapshots and checkpoint.",
        total.get("flush_seconds"),
    )
    yield CounterMetricFamily(
        "deltaflow_flush_retries",
        "Flushes that failed because the database was unreachable, and were retried.",
        total.get("flush_retries", 0),
    )
    actions = CounterMetricFamily(
        "deltaflow_reaper_actions",
        "What the reaper did: jobs requeued or failed after a lost lease, messages it "
        "published (jobs unpublished, or lost by the broker), consumed messages purged from "
        "the embedded broker.",
        labels=["action"],
    )
    done = total.get("reaper_actions", {})
    for action in REAPER_ACTIONS:
        actions.add_metric([action], done.get(action, 0))
    yield actions
    yield _histogram(
        "deltaflow_reaper_pass_seconds",
        "Time of one reaper pass: expired leases, publishing, the broker's count, the purge.",
        total.get("reaper_pass_seconds"),
    )


def _histogram(name: str, doc: str, data: dict[str, Any] | None) -> HistogramMetricFamily:
    """A stored histogram (per-bucket counts, then +Inf) as cumulative Prometheus buckets."""
    buckets, running = [], 0
    if data:
        for le, count in zip(data["le"], data["counts"], strict=False):
            running += count
            buckets.append((floatToGoString(le), running))
        running += data["counts"][-1]
    buckets.append(("+Inf", running))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=data["sum"] if data else 0)


def exposition(session: Session, lease_ttl: float) -> bytes:
    """The Prometheus text format of the service's metrics now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(session, lease_ttl))
    return generate_latest(registry)
