"""POST /v1/jobs/{id}/cancel: a queued job ends at once, a running one at its worker's next
flush, keeping the epochs it stored."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime

from sqlalchemy import update

from models.tables import Job
from tests.factories import XOR_JOB, snapshot_epochs, stored_epochs
from worker.runner import Runner

LONG_JOB = XOR_JOB | {"name": "long", "epochs": 200_000, "snapshot_every": 1000}


def _stored(sessions, job_id: str) -> tuple[int, int | None, int]:
    """(epoch rows, highest epoch, snapshot rows) of one job."""
    key = uuid.UUID(job_id)
    with sessions() as s:
        epochs = stored_epochs(s, key)
        snapshots = len(snapshot_epochs(s, key))
    return len(epochs), max(epochs, default=None), snapshots


def _at(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def _wait_for(client, job_id: str, done, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if done(job):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not get there in {timeout} s: {job}")


def test_a_queued_job_is_cancelled_at_once(client, sessions, settings):
    job = client.post("/v1/jobs", json=LONG_JOB).json()
    r = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 202, r.text
    cancelled = r.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["finished_at"] is not None
    assert cancelled["cancel_requested_at"] == cancelled["finished_at"]
    read = client.get(f"/v1/jobs/{job['id']}").json()
    assert read.pop("attempts") == []
    assert read == cancelled
    # The broker still holds its message; the worker that takes it finds nothing to claim.
    assert Runner(sessions, settings).run(uuid.UUID(job["id"])) == "not claimed"
    assert _stored(sessions, job["id"]) == (0, None, 0)
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"


def test_a_running_job_stops_at_its_next_flush(client, sessions, settings):
    job = client.post("/v1/jobs", json=LONG_JOB).json()
    result = []
    worker = threading.Thread(
        target=lambda: result.append(Runner(sessions, settings).run(uuid.UUID(job["id"])))
    )
    worker.start()
    try:
        _wait_for(client, job["id"], lambda j: j["epochs_done"] > 0)
        r = client.post(f"/v1/jobs/{job['id']}/cancel")
        asked = time.monotonic()
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "running"
        assert r.json()["cancel_requested_at"] is not None
        assert r.json()["finished_at"] is None
    finally:
        worker.join(timeout=30)
    # A flush every 0.05 s: the worker saw the request within a few of them (the bound is
    # loose for slow machines; without the cancel it would train for many seconds more).
    assert time.monotonic() - asked < 40 * settings.flush_interval
    assert result == ["cancelled"]
    ended = client.get(f"/v1/jobs/{job['id']}").json()
    assert ended["status"] == "cancelled"
    assert ended["cancel_requested_at"] == r.json()["cancel_requested_at"]
    assert _at(ended["finished_at"]) >= _at(ended["cancel_requested_at"])
    assert 0 < ended["epochs_done"] < LONG_JOB["epochs"]
    assert ended["final_loss"] is None
    # Nothing was written after the flush that saw the request, and nothing of it was lost.
    rows, last, _ = _stored(sessions, job["id"])
    assert rows == last == ended["epochs_done"]


def test_asking_twice_keeps_the_first_request(client, sessions, settings):
    job = client.post("/v1/jobs", json=LONG_JOB).json()
    lease = Runner(sessions, settings).claim(uuid.UUID(job["id"]))
    assert lease is not None
    first = client.post(f"/v1/jobs/{job['id']}/cancel")
    second = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["status"] == second.json()["status"] == "running"
    assert second.json()["cancel_requested_at"] == first.json()["cancel_requested_at"]
    # The worker holding the lease stops at its first flush, with what it trained until then.
    assert Runner(sessions, settings).run_claimed(lease) == "cancelled"
    ended = client.get(f"/v1/jobs/{job['id']}").json()
    assert ended["status"] == "cancelled"
    assert ended["cancel_requested_at"] == first.json()["cancel_requested_at"]
    assert _stored(sessions, job["id"])[0] == ended["epochs_done"] > 0


def test_an_ended_job_is_409_and_unchanged(client, trained):
    job = trained()
    r = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 409
    assert r.json()["message"] == f"job {job['id']} has already ended (succeeded)"
    assert client.get(f"/v1/jobs/{job['id']}").json() == job


def test_a_cancelled_job_cannot_be_cancelled_again(client):
    job = client.post("/v1/jobs", json=LONG_JOB).json()
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    r = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 409
    assert r.json()["message"] == f"job {job['id']} has already ended (cancelled)"


def test_unknown_and_other_owners_jobs_are_404(client, sessions):
    missing = uuid.uuid4()
    r = client.post(f"/v1/jobs/{missing}/cancel")
    assert r.status_code == 404
    assert r.json()["message"] == f"job {missing} not found"
    job = client.post("/v1/jobs", json=LONG_JOB).json()
    with sessions.begin() as s:
        s.execute(update(Job).where(Job.id == uuid.UUID(job["id"])).values(owner="someone-else"))
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 404
    with sessions() as s:
        row = s.get_one(Job, uuid.UUID(job["id"]))
        assert (row.status, row.cancel_requested_at) == ("queued", None)
