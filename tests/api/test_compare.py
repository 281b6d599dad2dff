"""GET /v1/compare: a field of several jobs as thinned lines, each with its summary and the
hyperparameters the jobs differ in — each figure checked against the job's full JSON columns."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from tests.factories import XOR_JOB, dying_job
from worker.runner import Runner


def _columns(client, job_id: str, fields: str) -> dict:
    params = {"format": "columns", "fields": fields, "limit": 100_000}
    return client.get(f"/v1/jobs/{job_id}/epochs", params=params).json()["columns"]


@pytest.fixture
def three(trained):
    return [trained(XOR_JOB | {"optimizer": {"learning_rate": lr}}) for lr in (0.5, 1.0, 2.0)]


def test_lines_summaries_and_what_the_jobs_differ_in(client, three):
    ids = [job["id"] for job in three]
    r = client.get("/v1/compare", params={"job_id": ids, "points": 20, "at": 100})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["field"], got["at"], got["points"]) == ("loss", 100, 20)
    assert got["varying"] == ["optimizer.learning_rate"]
    assert [j["id"] for j in got["jobs"]] == ids  # oldest first
    for job, line in zip(three, got["jobs"], strict=True):
        full = _columns(client, job["id"], "loss")
        epochs, loss = np.array(full["epoch"]), np.array(full["loss"])
        assert line["hyperparameters"] == {"optimizer.learning_rate": job["spec"]["optimizer"][
            "learning_rate"]}  # fmt: skip
        assert line["epochs"] == 250 and len(line["epoch"]) <= 20
        kept = {1, 250, int(epochs[loss.argmin()]), int(epochs[loss.argmax()])}
        assert kept <= set(line["epoch"])  # first, last and both extremes
        assert line["value"] == loss[np.searchsorted(epochs, line["epoch"])].tolist()
        assert line["summary"] == {"last": loss[-1], "min": loss.min(), "max": loss.max(),
                                   "at": loss[99]}  # fmt: skip


def test_a_per_layer_field_is_named_by_its_layer(client, three):
    job = three[0]
    r = client.get("/v1/compare", params={"job_id": job["id"], "field": "update_ratio_weights_2",
                                          "points": 500})  # fmt: skip
    assert r.status_code == 200, r.text
    (line,) = r.json()["jobs"]
    full = _columns(client, job["id"], "update_ratio_weights")
    assert line["epoch"] == full["epoch"]  # 250 epochs fit in 500 points: all of them
    assert line["value"] == [row[1] for row in full["update_ratio_weights"]]
    deeper = client.get("/v1/compare", params={"job_id": job["id"], "field": "delta_max_3"})
    assert deeper.json()["jobs"][0]["value"] == [None] * 250  # XOR's network has 2 layers


MISSING = str(uuid.UUID(int=7))


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"field": "los"}, 422, "field: 'los' is not an epoch field; use one of loss, "),
        ({"field": "dead_fraction"}, 422, "dead_fraction_l"),
        ({"job_id": None}, 422, "job_id: choose the jobs"),
        ({"job_id": MISSING}, 404, f"job_id: job {MISSING} not found"),
        ({"points": 2}, 422, "points: Input should be greater than or equal to 4"),
    ],
)
def test_bad_comparisons_say_what_to_change(client, three, params, status, says):
    query = {k: v for k, v in ({"job_id": three[0]["id"]} | params).items() if v is not None}
    r = client.get("/v1/compare", params=query)
    assert r.status_code == status, r.text
    assert says in r.json()["message"], r.json()["message"]


def test_a_stop_rule_ends_a_job_with_its_alert_in_the_job(client, sessions, settings):
    """The health panel's data: alerts with the job, the figures in its epochs."""
    body, _, _ = dying_job()
    job = client.post("/v1/jobs", json=body).json()
    assert Runner(sessions, settings).run(uuid.UUID(job["id"])) == "stopped"
    got = client.get(f"/v1/jobs/{job['id']}").json()
    alert = got["health"][0]  # layer 1's: it fired first (layer 2's in the same epoch after it)
    assert alert["rule"] == "dead_units"
    assert got["status"] == "stopped" and got["reason"] == alert["message"]
    assert alert["layer"] == 1 and alert["message"].startswith("layer 1: ")
    assert alert["message"].endswith(" of 12 units dead since epoch 2")
    assert got["epochs_done"] == alert["since"] == alert["epoch"]
    columns = _columns(client, job["id"], "dead_fraction")
    assert columns["epoch"][-1] == got["epochs_done"]
    assert columns["dead_fraction"][-1][0] > 0.5


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"stop_when": ["dead"]}, "stop_when.0: Input should be 'dead_units', 'saturated_units'"),
        ({"stop_when": ["nonfinite", "nonfinite"]}, "stop_when: names the rule "
         "'nonfinite' twice"),
        ({"health": {"update_ratio": {"low": 1.0, "high": 0.5}}},
         "health.update_ratio: low (1.0) must be below high (0.5)"),
        ({"health": {"dead_units": 0}}, "health.dead_units: Input should be greater than 0"),
    ],
)  # fmt: skip
def test_health_rules_a_job_cannot_apply_are_422s(client, counts, changes, says):
    before = counts()
    r = client.post("/v1/jobs", json=XOR_JOB | changes)
    assert r.status_code == 422, r.text
    assert says in r.json()["message"], r.json()["message"]
    assert counts() == before
