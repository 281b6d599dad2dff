"""The runner on real databases: claim, lease fencing, flushes, resume, and how jobs end."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import update

from backprop import Trainer, TrainSpec, datasets
from models.base import utcnow
from models.lineage import latest_checkpoint
from models.tables import Job
from tests.factories import (
    parameters,
    reference,
    snapshot_epochs,
    stored_epochs,
    stored_losses,
    stored_snapshot,
)
from tests.worker.conftest import XOR
from worker.runner import Runner


class Crash(Exception):
    """Stands for the worker process dying: nothing after it is written."""


class CrashingRunner(Runner):
    def __init__(self, *args, after_flushes: int) -> None:
        super().__init__(*args)
        self.left = after_flushes

    def _write(self, *args, **kwargs):
        outcome = super()._write(*args, **kwargs)
        self.left -= 1
        if self.left == 0:
            raise Crash
        return outcome


def _epochs(sessions, job_id) -> list[int]:
    with sessions() as s:
        return stored_epochs(s, job_id)


def _job(sessions, job_id) -> Job:
    with sessions() as s:
        return s.get_one(Job, job_id)


def _final_parameters(sessions, job_id, body) -> list[bytes]:
    """W^1 … W^L, b^1 … b^L of the last snapshot, each as bytes in the seed's layout."""
    with sessions() as s:
        Ws, bs = stored_snapshot(s, job_id, body["epochs"], body)
    return [np.ascontiguousarray(a).tobytes() for a in Ws + bs]


def test_a_job_runs_to_the_end(sessions, settings, make_job):
    job_id = make_job()
    assert Runner(sessions, settings).run(job_id) == "succeeded"
    job = _job(sessions, job_id)
    assert (job.status, job.epochs_done, job.attempt) == ("succeeded", 60, 1)
    assert job.lease_owner is None and job.finished_at >= job.started_at
    assert _epochs(sessions, job_id) == list(range(1, 61))
    with sessions() as s:
        snaps = snapshot_epochs(s, job_id)
        losses = stored_losses(s, job_id)
    assert snaps == [0, 7, 14, 21, 28, 35, 42, 49, 56, 60]
    assert job.final_loss == losses[-1] and job.best_loss == min(losses)
    want = parameters(reference(XOR))
    assert _final_parameters(sessions, job_id, XOR) == want


def test_a_second_delivery_finds_nothing_to_claim(sessions, settings, make_job):
    job_id = make_job()
    first = Runner(sessions, settings)
    lease = first.claim(job_id).lease
    assert (lease.attempt, lease.number) == (1, 1)
    assert Runner(sessions, settings).run(job_id) == "not claimed"
    assert _job(sessions, job_id).lease_owner == lease.owner


def test_a_lost_lease_writes_nothing(sessions, settings, make_job, expire_lease):
    job_id = make_job()
    stale = Runner(sessions, settings)
    claimed = stale.claim(job_id)
    expire_lease(job_id)
    winner = Runner(sessions, settings)
    assert winner.claim(job_id).lease.attempt == 2
    assert stale.run_claimed(claimed) == "lease lost"
    assert _epochs(sessions, job_id) == []
    with sessions() as s:
        assert latest_checkpoint(s, job_id) is None
    expire_lease(job_id)
    assert winner.run(job_id) == "succeeded"
    assert _epochs(sessions, job_id) == list(range(1, 61))


# A checkpoint at every flush, or none before the crash: the resumed worker then replays every
# stored epoch from the initial network, storing none of them again.
@pytest.mark.parametrize("checkpoint_interval", [0, 3600])
@pytest.mark.parametrize("crash_after", [1, 5, 20])
def test_a_crashed_job_resumes_bit_identically(
    sessions, settings, make_job, expire_lease, crash_after, checkpoint_interval
):
    body = XOR | {"batch_size": 2, "optimizer": {"name": "adam", "learning_rate": 0.05}}
    job_id = make_job(body)
    settings = settings.model_copy(update={"checkpoint_interval": checkpoint_interval})
    with pytest.raises(Crash):
        CrashingRunner(sessions, settings, after_flushes=crash_after).run(job_id)
    with sessions() as s:
        checkpoint = latest_checkpoint(s, job_id)
        assert (checkpoint is None) == (checkpoint_interval > 0)
    done = _epochs(sessions, job_id)
    assert done == list(range(1, len(done) + 1))
    expire_lease(job_id)
    assert Runner(sessions, settings).run(job_id) == "succeeded"
    job = _job(sessions, job_id)
    assert job.attempt == 2
    assert _epochs(sessions, job_id) == list(range(1, 61))
    want = parameters(reference(body))
    assert _final_parameters(sessions, job_id, body) == want
    with sessions() as s:
        losses = stored_losses(s, job_id)
        assert list(losses) == [r.loss for r in _reference_results(body)]


def _reference_results(body):
    spec = TrainSpec.model_validate({k: v for k, v in body.items() if k not in ("name", "dataset")})
    data = datasets.load(body["dataset"]["builtin"])
    return list(Trainer(spec, data.x, data.y).epochs())


def test_cancellation_is_seen_at_the_next_flush(sessions, settings, make_job):
    job_id = make_job(XOR | {"epochs": 5000})
    with sessions.begin() as s:
        s.execute(update(Job).where(Job.id == job_id).values(cancel_requested_at=utcnow()))
    assert Runner(sessions, settings).run(job_id) == "cancelled"
    job = _job(sessions, job_id)
    assert job.status == "cancelled" and job.final_loss is None
    assert _epochs(sessions, job_id) == [1]  # one epoch trained before the first flush


def test_divergence_fails_the_job_and_keeps_the_epochs_before_it(sessions, settings, make_job):
    body = {
        "name": "boom",
        "network": {"layers": [1, 8, 1], "activation": "relu", "output_activation": "identity"},
        "optimizer": {"learning_rate": 50.0},
        "epochs": 100,
        "dataset": {"builtin": "sine"},
    }
    job_id = make_job(body)
    assert Runner(sessions, settings).run(job_id) == "failed"
    job = _job(sessions, job_id)
    assert job.status == "failed"
    assert job.error.startswith("training diverged at epoch ")
    k = int(job.error.split("epoch ")[1].split(":")[0])
    assert _epochs(sessions, job_id) == list(range(1, k))


def test_data_that_does_not_fit_the_spec_fails_with_a_reason(sessions, settings, make_job):
    job_id = make_job(spec_override={"network": {"layers": [3, 4, 1]}})
    assert Runner(sessions, settings).run(job_id) == "failed"
    job = _job(sessions, job_id)
    assert job.error.startswith("bad data: x must have shape (n_samples, 3)")
    assert _epochs(sessions, job_id) == []


def test_early_stopping_ends_with_a_snapshot_of_the_last_epoch(sessions, settings, make_job):
    body = XOR | {"epochs": 5000, "early_stopping": {"patience": 3, "min_delta": 0.01}}
    job_id = make_job(body)
    assert Runner(sessions, settings).run(job_id) == "succeeded"
    job = _job(sessions, job_id)
    assert job.epochs_done < 5000
    with sessions() as s:
        last = snapshot_epochs(s, job_id)[-1]
    assert last == job.epochs_done == _epochs(sessions, job_id)[-1]


def test_the_checkpoint_holds_the_last_flushed_epoch_when_due(sessions, settings, make_job):
    job_id = make_job()
    settings = settings.model_copy(update={"checkpoint_interval": 0})
    with pytest.raises(Crash):
        CrashingRunner(sessions, settings, after_flushes=3).run(job_id)
    with sessions() as s:
        checkpoint = latest_checkpoint(s, job_id)
        job = s.get_one(Job, job_id)
        assert snapshot_epochs(s, job_id)[0] == 0
    assert checkpoint.epoch == job.epochs_done == _epochs(sessions, job_id)[-1]
    assert job.lease_expires_at > utcnow() + timedelta(seconds=settings.lease_ttl / 2)


def test_a_worker_reads_a_shared_data_set_once(sessions, settings, make_job):
    runner = Runner(sessions, settings)
    first, second = make_job(), make_job(XOR | {"seed": 1})
    assert runner.run(first) == runner.run(second) == "succeeded"
    assert len(runner.datasets._items) == 1
    x, _ = next(iter(runner.datasets._items.values()))
    assert not x.flags.writeable
