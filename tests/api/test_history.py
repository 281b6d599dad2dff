"""History queries: job filters and orders, epoch ranges and downsamples, trajectories, npz."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
from sqlalchemy import update

from models.tables import Job
from tests.factories import XOR_JOB


@pytest.fixture
def jobs(client, sessions):
    """Six jobs with known names, tags, statuses and final losses (None for unfinished)."""
    made = {}
    plan = [
        ("alpha-1", {"team": "a"}, "succeeded", 0.30),
        ("alpha-2", {"team": "a", "lr": "big"}, "succeeded", 0.10),
        ("beta-1", {"team": "b"}, "failed", None),
        ("beta-2", {"team": "b", "lr": "big"}, "succeeded", 0.20),
        ("gamma", {}, "queued", None),
        ("alpha_3", {"team": "a"}, "succeeded", 0.10),
    ]
    for name, tags, status, loss in plan:
        job = client.post("/v1/jobs", json=XOR_JOB | {"name": name, "tags": tags}).json()
        with sessions.begin() as s:
            s.execute(
                update(Job)
                .where(Job.id == uuid.UUID(job["id"]))
                .values(status=status, final_loss=loss)
            )
        made[name] = job["id"]
    return made


def _names(client, **params) -> list[str]:
    seen, cursor = [], None
    while True:
        query = params | {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = client.get("/v1/jobs", params=query)
        assert r.status_code == 200, r.text
        seen += [j["name"] for j in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return seen


def test_filters(client, jobs):
    assert set(_names(client, status="succeeded")) == {"alpha-1", "alpha-2", "beta-2", "alpha_3"}
    assert set(_names(client, status=["failed", "queued"])) == {"beta-1", "gamma"}
    assert set(_names(client, name="alpha-")) == {"alpha-1", "alpha-2"}  # "_" is no wildcard
    assert set(_names(client, tag="team:a")) == {"alpha-1", "alpha-2", "alpha_3"}
    assert set(_names(client, tag=["team:b", "lr:big"])) == {"beta-2"}
    assert _names(client, tag="team:c") == []
    assert _names(client, created_after="2999-01-01T00:00:00") == []
    assert len(_names(client, created_before="2999-01-01T00:00:00Z")) == 6


def test_orders_page_through_every_job_once(client, jobs):
    assert _names(client) == list(reversed(list(jobs)))
    assert _names(client, order_by="created_at") == list(jobs)
    by_loss = _names(client, order_by="final_loss")
    assert set(by_loss[:2]) == {"alpha-2", "alpha_3"}  # a tie, broken by id
    assert by_loss[2:4] == ["beta-2", "alpha-1"]
    assert set(by_loss[4:]) == {"beta-1", "gamma"}  # unfinished jobs last
    by_loss_desc = _names(client, order_by="-final_loss")
    assert by_loss_desc[:2] == ["alpha-1", "beta-2"]
    assert set(by_loss_desc[4:]) == {"beta-1", "gamma"}


def test_pages_are_stable_while_jobs_are_added(client, jobs):
    first = client.get("/v1/jobs", params={"limit": 3}).json()
    for i in range(3):
        client.post("/v1/jobs", json=XOR_JOB | {"name": f"late-{i}"})
    rest = _names(client, cursor=first["next_cursor"])
    seen = [j["name"] for j in first["items"]] + rest
    assert sorted(seen) == sorted(jobs)


def test_bad_list_parameters(client, jobs):
    cursor = client.get("/v1/jobs", params={"limit": 1}).json()["next_cursor"]
    for params, says in [
        ({"order_by": "name"}, "order_by"),
        ({"status": "done"}, "status"),
        ({"tag": "no-colon"}, "tag"),
        ({"limit": 501}, "limit"),
        ({"order_by": "final_loss", "cursor": cursor}, "order_by=-created_at"),
        ({"batch_id": "nope"}, "batch_id"),
    ]:
        r = client.get("/v1/jobs", params=params)
        assert r.status_code == 422, params
        assert says in r.json()["message"], r.json()["message"]


def test_epoch_ranges_fields_and_columns(client, trained):
    job = trained()
    url = f"/v1/jobs/{job['id']}/epochs"
    rows = client.get(url, params={"start": 10, "end": 19, "fields": "loss,learning_rate"}).json()
    assert [r["epoch"] for r in rows["items"]] == list(range(10, 20))
    assert set(rows["items"][0]) == {"epoch", "loss", "learning_rate"}
    cols = client.get(url, params={"start": 10, "end": 19, "fields": "loss", "format": "columns"})
    assert cols.json()["columns"] == {
        "epoch": list(range(10, 20)),
        "loss": [r["loss"] for r in rows["items"]],
    }
    full = client.get(url, params={"format": "columns", "limit": 100_000}).json()
    assert full["columns"]["epoch"] == list(range(1, 251))
    assert full["next_cursor"] is None
    assert len(full["columns"]["grad_norm_weights"][0]) == 2
    assert client.get(url, params={"fields": "loss,weights"}).status_code == 422


@pytest.mark.parametrize(("points", "start", "end"), [(4, 0, None), (10, 0, None), (37, 5, 200)])
def test_downsampling_keeps_first_last_min_and_max(client, trained, points, start, end):
    job = trained()
    url = f"/v1/jobs/{job['id']}/epochs"
    every = client.get(url, params={"format": "columns", "fields": "loss", "limit": 100_000})
    epochs = np.array(every.json()["columns"]["epoch"])
    losses = np.array(every.json()["columns"]["loss"])
    inside = (epochs >= start) & (epochs <= (end or 10**9))
    epochs, losses = epochs[inside], losses[inside]
    params = {"points": points, "start": start, "format": "columns"}
    body = client.get(url, params=params | ({"end": end} if end else {})).json()
    got = body["columns"]["epoch"]
    assert len(got) <= points
    assert got == sorted(set(got))
    for anchor in (epochs[0], epochs[-1], epochs[losses.argmin()], epochs[losses.argmax()]):
        assert anchor in got
    assert body["downsampled"] == {"points": len(got), "of": len(epochs)}
    assert body["next_cursor"] is None


def test_a_small_range_is_not_downsampled(client, trained):
    job = trained()
    body = client.get(f"/v1/jobs/{job['id']}/epochs", params={"points": 50, "end": 30}).json()
    assert [r["epoch"] for r in body["items"]] == list(range(1, 31))
    assert body["downsampled"] is None
    r = client.get(f"/v1/jobs/{job['id']}/epochs", params={"points": 50, "cursor": "MQ"})
    assert r.status_code == 422


def test_trajectory_equals_the_snapshots(client, trained):
    job = trained()
    base = f"/v1/jobs/{job['id']}"
    epochs = [s["epoch"] for s in client.get(f"{base}/snapshots").json()["items"]]
    snapshots = [client.get(f"{base}/snapshots/{e}").json() for e in epochs]
    w = client.get(f"{base}/trajectory", params={"layer": 1, "param": "weight", "k": 3, "j": 1})
    assert w.status_code == 200
    assert w.json()["name"] == "w^1_{3,1}"
    assert w.json()["epochs"] == epochs
    assert w.json()["values"] == [s["layers"][0]["weights"][3][1] for s in snapshots]
    b = client.get(f"{base}/trajectory", params={"layer": 2, "param": "bias", "k": 0}).json()
    assert b["name"] == "b^2_{0}"
    assert b["values"] == [s["layers"][1]["biases"][0] for s in snapshots]
    assert len(set(b["values"])) > 1  # the bias moved


def test_names_tell_apart_weights_of_a_layer_wider_than_10(client, trained):
    """w^1_kj with k = 11, j = 0 and with k = 1, j = 10 were both `w^1_110`."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (8, 11)).round(3).tolist()
    body = {"name": "wide", "network": {"layers": [11, 12, 1]}, "epochs": 5,
            "dataset": {"inline": {"x": x, "y": [0, 1] * 4}}}  # fmt: skip
    job = trained(body)
    base = f"/v1/jobs/{job['id']}"
    last = client.get(f"{base}/snapshots/latest").json()["layers"][0]["weights"]
    found = {}
    for k, j in ((11, 0), (1, 10)):
        params = {"layer": 1, "param": "weight", "k": k, "j": j}
        got = client.get(f"{base}/trajectory", params=params).json()
        assert got["values"][-1] == last[k][j]
        found[got["name"]] = (k, j)
    assert found == {"w^1_{11,0}": (11, 0), "w^1_{1,10}": (1, 10)}


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"layer": 3, "param": "weight", "k": 0, "j": 0}, "layer must be 1..2, got 3"),
        ({"layer": 0, "param": "bias", "k": 0}, "layer must be 1..2"),
        ({"layer": 1, "param": "weight", "k": 4, "j": 0}, "k must be 0..3 (n_1 = 4), got 4"),
        ({"layer": 1, "param": "weight", "k": 0, "j": 2}, "j must be 0..1 (n_0 = 2), got 2"),
        ({"layer": 1, "param": "weight", "k": 0}, "j must be 0..1"),
        ({"layer": 2, "param": "bias", "k": 0, "j": 0}, "has no j"),
        ({"layer": 1, "param": "gain", "k": 0}, "param"),
    ],
)
def test_trajectory_out_of_range(shared, params, says):
    job = shared.finished_job
    r = shared.client.get(f"/v1/jobs/{job['id']}/trajectory", params=params)
    assert r.status_code == 422
    assert says in r.json()["message"]


def test_npz_round_trips_the_json_snapshot(client, trained):
    job = trained()
    base = f"/v1/jobs/{job['id']}/snapshots/100"
    r = client.get(f"{base}/weights.npz")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-snapshot-epoch"] == "100"
    assert "attachment" in r.headers["content-disposition"]
    npz = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert sorted(npz.files) == ["W1", "W2", "b1", "b2"]
    snap = client.get(base).json()
    for layer in snap["layers"]:
        l = layer["layer"]
        assert npz[f"W{l}"].tolist() == layer["weights"]
        assert npz[f"b{l}"].tolist() == layer["biases"]
    assert npz["W1"].shape == (4, 2)


def test_the_json_snapshot_names_the_npz_operation_for_the_old_format_parameter(client, trained):
    job = trained()
    r = client.get(f"/v1/jobs/{job['id']}/snapshots/100", params={"format": "npz"})
    assert r.status_code == 422
    assert r.json()["message"].startswith("query.format: is no longer read here")
    assert "weights.npz" in r.json()["message"]
