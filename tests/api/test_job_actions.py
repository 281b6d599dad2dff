"""DELETE /v1/jobs/{id}, POST /v1/jobs/{id}/predict and GET /v1/jobs/{id}/events."""

from __future__ import annotations

import json
import threading
import uuid

import numpy as np
import pytest
from sqlalchemy import func, select

from api.routes import job_actions
from models.tables import Checkpoint, EpochChunk, Job, JobTag, SnapshotChunk
from tests.factories import XOR_JOB, dying_job
from worker.runner import Runner

HISTORY = (EpochChunk, SnapshotChunk, Checkpoint, JobTag, Job)
XOR_X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]


def _rows_of(sessions, job_id: str) -> dict[str, int]:
    """Rows that belong to one job, per table."""
    key = uuid.UUID(job_id)
    with sessions() as s:
        return {
            m.__tablename__: s.scalar(
                select(func.count()).select_from(m).where((m.id if m is Job else m.job_id) == key)
            )
            for m in HISTORY
        }


def _forward(snapshot: dict, x: list[list[float]]) -> np.ndarray:
    """a^L by the seed's eq. (2), one sample per column: a^l = σ(W^l a^{l-1} + b^l)."""
    a = np.array(x, dtype=np.float64).T
    for layer in snapshot["layers"]:
        W, b = np.array(layer["weights"]), np.array(layer["biases"])
        a = 1.0 / (1.0 + np.exp(-(W @ a + b[:, None])))
    return a.T


# --- DELETE ---


def test_delete_removes_the_job_and_its_history_only(client, sessions, trained, counts):
    doomed = trained(XOR_JOB | {"tags": {"team": "ml"}})
    kept = trained(XOR_JOB | {"name": "kept", "tags": {"team": "ml", "try": "2"}})
    doomed_rows = _rows_of(sessions, doomed["id"])
    assert all(n > 0 for n in doomed_rows.values()), doomed_rows
    kept_rows = _rows_of(sessions, kept["id"])
    before = counts()

    r = client.delete(f"/v1/jobs/{doomed['id']}")
    assert r.status_code == 204
    assert r.content == b""
    assert set(_rows_of(sessions, doomed["id"]).values()) == {0}
    assert _rows_of(sessions, kept["id"]) == kept_rows
    assert counts()["datasets"] == before["datasets"] == 1  # shared, so kept
    assert client.get(f"/v1/jobs/{doomed['id']}").status_code == 404
    assert client.get(f"/v1/jobs/{kept['id']}").json()["status"] == "succeeded"
    assert client.delete(f"/v1/jobs/{doomed['id']}").status_code == 404


@pytest.mark.parametrize("claimed", [False, True], ids=["queued", "running"])
def test_delete_of_an_unfinished_job_is_409_and_removes_nothing(
    client, sessions, settings, counts, claimed
):
    job = client.post("/v1/jobs", json=XOR_JOB | {"tags": {"team": "ml"}}).json()
    if claimed:
        assert Runner(sessions, settings).claim(uuid.UUID(job["id"])) is not None
    status = "running" if claimed else "queued"
    before, rows = counts(), _rows_of(sessions, job["id"])

    r = client.delete(f"/v1/jobs/{job['id']}")
    assert r.status_code == 409
    assert f"is {status}; cancel it first or wait until it ends" in r.json()["message"]
    assert counts() == before
    assert _rows_of(sessions, job["id"]) == rows
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == status


def test_unknown_jobs_are_404(client):
    unknown = uuid.uuid4()
    assert client.delete(f"/v1/jobs/{unknown}").status_code == 404
    r = client.post(f"/v1/jobs/{unknown}/predict", json={"x": XOR_X})
    assert r.status_code == 404
    r = client.get(f"/v1/jobs/{unknown}/events")
    assert r.status_code == 404
    assert "not found" in r.json()["message"]


# --- predict ---


def test_predict_uses_the_latest_snapshot_by_default(client, trained):
    job = trained()
    latest = client.get(f"/v1/jobs/{job['id']}/snapshots/latest").json()
    x = [*XOR_X, [0.25, -3.0], [10.0, 0.5]]
    r = client.post(f"/v1/jobs/{job['id']}/predict", json={"x": x})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["epoch"] == latest["epoch"] == 250
    assert np.array(body["outputs"]).shape == (6, 1)
    np.testing.assert_allclose(body["outputs"], _forward(latest, x), rtol=1e-12, atol=0)


def test_predict_at_epoch_0_is_the_initial_network(client, trained):
    job = trained()
    url = f"/v1/jobs/{job['id']}/predict"
    initial = client.get(f"/v1/jobs/{job['id']}/snapshots/0").json()
    at_0 = client.post(url, json={"x": XOR_X, "epoch": 0}).json()
    assert at_0["epoch"] == 0
    np.testing.assert_allclose(at_0["outputs"], _forward(initial, XOR_X), rtol=1e-12, atol=0)
    latest = client.post(url, json={"x": XOR_X}).json()
    assert not np.allclose(at_0["outputs"], latest["outputs"])


BAD_INPUTS = [
    ({"x": [[0.0, 1.0, 2.0]]}, "x.0: each row of x needs 2 values"),
    ({"x": [[0.0, 1.0], [1.0]]}, "x.1: each row of x needs 2 values"),
    ({"x": []}, "x: List should have at least 1 item"),
    ({"x": [[0.0, 1.0]] * 10_001}, "x: List should have at most 10000 items"),
    ({"x": [[0.0, 1.0]], "epoch": -1}, "epoch"),
    ({"x": [[0.0, "a"]]}, "x.0.1"),
    ({"x": [[0.0, 1.0]], "layer": 2}, "layer: Extra inputs are not permitted"),
    ({"inputs": [[0.0, 1.0]]}, "x: Field required"),
]


@pytest.mark.parametrize(("body", "says"), BAD_INPUTS)
def test_bad_predict_inputs_are_422(shared, body, says):
    job = shared.finished_job
    r = shared.client.post(f"/v1/jobs/{job['id']}/predict", json=body)
    assert r.status_code == 422
    assert says in r.json()["message"], r.json()["message"]


def test_predict_rejects_nan(client, trained):
    job = trained()
    raw = '{"x": [[0, NaN]]}'
    r = client.post(
        f"/v1/jobs/{job['id']}/predict", content=raw, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


def test_predict_without_such_snapshot_is_404(client, trained):
    job = trained()
    r = client.post(f"/v1/jobs/{job['id']}/predict", json={"x": XOR_X, "epoch": 7})
    assert r.status_code == 404
    assert "no snapshot at epoch 7; the nearest are at epoch 0 and 50" in r.json()["message"]
    r = client.post(f"/v1/jobs/{job['id']}/predict", json={"x": XOR_X, "epoch": 251})
    assert "nearest are at epoch 250 (" in r.json()["message"]
    queued = client.post("/v1/jobs", json=XOR_JOB).json()
    r = client.post(f"/v1/jobs/{queued['id']}/predict", json={"x": XOR_X})
    assert r.status_code == 404
    assert "has no snapshot yet" in r.json()["message"]


# --- events ---


def _parse(lines) -> list[dict]:
    """SSE wire format to events: {"event", "id", "data"} with data decoded as JSON."""
    events, fields = [], {}
    for line in lines:
        if line == "":
            if fields:
                events.append(fields | {"data": json.loads(fields.get("data", "null"))})
            fields = {}
        elif not line.startswith(":"):  # a comment: the keep-alive ping
            key, _, value = line.partition(":")
            fields[key] = value.removeprefix(" ")
    return events


class Listener(threading.Thread):
    """Reads an event stream in the background, so a stream that never ends fails the test
    instead of hanging it."""

    def __init__(self, client, url: str, headers: dict | None = None) -> None:
        super().__init__(daemon=True)
        self.client, self.url, self.headers = client, url, headers or {}
        self.events: list[dict] = []
        self.first = threading.Event()
        self.ended = False
        self.response = None

    def run(self) -> None:
        with self.client.stream("GET", self.url, headers=self.headers) as r:
            self.response = r
            event_lines: list[str] = []
            for line in r.iter_lines():
                event_lines.append(line)
                if line == "":
                    self.events += _parse(event_lines)
                    event_lines = []
                    self.first.set()
        self.ended = True

    def finish(self, timeout: float = 60) -> list[dict]:
        self.join(timeout)
        assert self.ended, "the event stream did not end"
        assert self.response.status_code == 200
        assert self.response.headers["content-type"].startswith("text/event-stream")
        return self.events


def _listen(client, job_id: str, headers: dict | None = None) -> list[dict]:
    listener = Listener(client, f"/v1/jobs/{job_id}/events", headers)
    listener.start()
    return listener.finish()


def _epochs(events: list[dict]) -> list[int]:
    return [e["epoch"] for ev in events if ev["event"] == "epochs" for e in ev["data"]["epochs"]]


def test_events_of_a_finished_job(client, trained):
    job = trained()
    events = _listen(client, job["id"])
    assert events[0]["event"] == "status"
    assert events[-1] == {
        "event": "status",
        "id": "250",
        "data": {
            "status": "succeeded",
            "epochs_done": 250,
            "final_loss": job["final_loss"],
            "error": None,
            "reason": None,
            "health": [],
        },
    }
    assert _epochs(events) == list(range(1, 251))
    for ev in events:
        if ev["event"] == "epochs":
            assert ev["id"] == str(ev["data"]["epochs"][-1]["epoch"])
    stored = client.get(f"/v1/jobs/{job['id']}/epochs").json()["items"]
    sent = [e for ev in events if ev["event"] == "epochs" for e in ev["data"]["epochs"]]
    assert sent == [{k: e[k] for k in ("epoch", "loss", "val_loss")} for e in stored]


def test_events_carry_the_fields_asked_for_and_the_alerts(client, sessions, settings):
    body, _, _ = dying_job()
    job = client.post("/v1/jobs", json=body).json()
    assert Runner(sessions, settings).run(uuid.UUID(job["id"])) == "stopped"
    fields = "dead_fraction,update_ratio_weights,nonfinite"
    listener = Listener(client, f"/v1/jobs/{job['id']}/events?fields={fields}", None)
    listener.start()
    events = listener.finish()
    stored = client.get(
        f"/v1/jobs/{job['id']}/epochs", params={"fields": f"loss,val_loss,{fields}"}
    )
    sent = [e for ev in events if ev["event"] == "epochs" for e in ev["data"]["epochs"]]
    assert sent == stored.json()["items"]  # the same values, NaN as null, per layer a list
    final = events[-1]["data"]
    assert final["status"] == "stopped" and final["health"][0]["rule"] == "dead_units"
    assert final["reason"] == final["health"][0]["message"]
    bad = client.get(f"/v1/jobs/{job['id']}/events", params={"fields": "los"})
    assert bad.status_code == 422 and "fields: unknown field(s) los" in bad.json()["message"]


def test_events_come_in_bounded_batches(client, trained, monkeypatch):
    job = trained()
    monkeypatch.setattr(job_actions, "EVENT_ROWS", 100)
    events = _listen(client, job["id"])
    sizes = [len(ev["data"]["epochs"]) for ev in events if ev["event"] == "epochs"]
    assert sizes == [100, 100, 50]
    assert _epochs(events) == list(range(1, 251))
    assert [ev["event"] for ev in events][-1] == "status"


def test_events_resume_after_last_event_id(client, trained):
    job = trained()
    events = _listen(client, job["id"], {"Last-Event-ID": "200"})
    assert _epochs(events) == list(range(201, 251))
    assert events[-1]["data"]["status"] == "succeeded"
    r = client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "nope"})
    assert r.status_code == 422


def test_events_follow_a_running_job(client, sessions, settings, monkeypatch):
    # One event per poll, polled often: two `epochs` events then mean two polls found new rows.
    monkeypatch.setattr(job_actions, "EVENT_ROWS", 10**9)
    monkeypatch.setattr(job_actions, "POLL_SECONDS", 0.02)
    job = client.post("/v1/jobs", json=XOR_JOB | {"epochs": 20_000}).json()
    listener = Listener(client, f"/v1/jobs/{job['id']}/events")
    listener.start()
    # Training starts only once the stream is open, so the stream sees it from the start.
    assert listener.first.wait(30)
    fast = settings.model_copy(update={"flush_interval": 0.02})
    assert Runner(sessions, fast).run(uuid.UUID(job["id"])) == "succeeded"
    events = listener.finish()

    kinds = [ev["event"] for ev in events]
    assert events[0]["data"]["status"] == "queued"
    assert [ev["data"]["status"] for ev in events if ev["event"] == "status"][-1] == "succeeded"
    assert kinds[-1] == "status"
    batches = [ev["data"]["epochs"] for ev in events if ev["event"] == "epochs"]
    assert len(batches) >= 2, "epochs arrived in one piece, not while the job ran"
    assert "running" in [ev["data"]["status"] for ev in events if ev["event"] == "status"]
    assert _epochs(events) == list(range(1, 20_001))  # consecutive: no gap, no duplicate
