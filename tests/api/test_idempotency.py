"""Idempotency-Key on POST /v1/jobs and POST /v1/batches: a repeat answers with what the first
request created, and stores and publishes nothing."""

from __future__ import annotations

import json
import threading

import pytest

from api import submission
from tests.factories import XOR_JOB, broker_messages

KEY = {"Idempotency-Key": "order-42"}
BATCH = {
    "name": "sweep",
    "base": XOR_JOB | {"epochs": 20, "snapshot_every": 10},
    "grid": {"optimizer.learning_rate": [0.5, 2.0], "seed": [1, 2, 3]},
}


def test_a_repeat_answers_the_first_job(client, settings, counts):
    first = client.post("/v1/jobs", json=XOR_JOB, headers=KEY)
    assert first.status_code == 201, first.text
    stored = counts()
    again = client.post("/v1/jobs", json=XOR_JOB, headers=KEY)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers["location"] == f"/v1/jobs/{first.json()['id']}"
    assert counts() == stored
    assert broker_messages(settings) == 1


def test_key_order_whitespace_and_spelled_out_defaults_are_the_same_request(client, counts):
    first = client.post("/v1/jobs", json=XOR_JOB, headers=KEY).json()
    stored = counts()
    # Keys reversed, other whitespace, 2 for 2.0, and the default loss given explicitly.
    body = dict(reversed(list((XOR_JOB | {"optimizer": {"learning_rate": 2}}).items())))
    raw = json.dumps(body | {"loss": "mse"}, indent=3)
    headers = KEY | {"content-type": "application/json"}
    again = client.post("/v1/jobs", content=raw, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    assert counts() == stored


def test_the_same_key_with_another_body_is_409_and_stores_nothing(client, settings, counts):
    first = client.post("/v1/jobs", json=XOR_JOB, headers=KEY).json()
    stored = counts()
    r = client.post("/v1/jobs", json=XOR_JOB | {"epochs": 251}, headers=KEY)
    assert r.status_code == 409
    message = r.json()["message"]
    assert "Idempotency-Key 'order-42' was used for a different request" in message
    assert first["id"] in message
    assert counts() == stored
    assert broker_messages(settings) == 1


def test_without_a_key_each_post_is_a_new_job(client, counts):
    ids = {client.post("/v1/jobs", json=XOR_JOB).json()["id"] for _ in range(2)}
    assert len(ids) == 2
    assert counts()["jobs"] == 2


def test_a_key_of_200_printable_characters_is_accepted(client):
    key = "k-" + "x" * 197 + "~"
    assert (
        client.post("/v1/jobs", json=XOR_JOB, headers={"Idempotency-Key": key}).status_code == 201
    )


@pytest.mark.parametrize(
    ("key", "says"),
    [("a" * 201, "at most 200 characters"), ("", "at least 1 character"), ("a\tb", "printable")],
    ids=["201 chars", "empty", "tab"],
)
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/batches"])
def test_a_bad_key_is_422_naming_the_header(shared, path, key, says):
    body = XOR_JOB if path == "/v1/jobs" else BATCH
    r = shared.client.post(path, json=body, headers={"Idempotency-Key": key})
    assert r.status_code == 422
    assert r.json()["message"].startswith("header.Idempotency-Key: ")
    assert says in r.json()["message"]
    assert shared.counts()["jobs"] == 0


def test_concurrent_requests_with_one_key_make_one_job(client, settings, counts):
    start = threading.Barrier(2)
    answers = []

    def post() -> None:
        start.wait()
        answers.append(client.post("/v1/jobs", json=XOR_JOB, headers=KEY))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(r.status_code for r in answers) == [200, 201], [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert counts()["jobs"] == 1
    assert broker_messages(settings) == 1


def test_an_insert_refused_by_the_unique_index_answers_as_a_repeat(client, counts, monkeypatch):
    """The race the threads above may not hit on SQLite (its writers queue): the lookup misses,
    a concurrent request commits the key, and our insert violates the unique index."""
    first = client.post("/v1/jobs", json=XOR_JOB, headers=KEY).json()
    stored = counts()
    real_find, missed = submission._find, []

    def find_after_a_race(*args):
        if not missed:
            missed.append(True)
            return None
        return real_find(*args)

    monkeypatch.setattr(submission, "_find", find_after_a_race)
    again = client.post("/v1/jobs", json=XOR_JOB, headers=KEY)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    missed.clear()
    other = client.post("/v1/jobs", json=XOR_JOB | {"name": "other"}, headers=KEY)
    assert other.status_code == 409
    assert counts() == stored


def test_a_repeated_batch_answers_the_same_batch_and_jobs(client, settings, counts):
    first = client.post("/v1/batches", json=BATCH, headers=KEY)
    assert first.status_code == 201, first.text
    stored = counts()
    again = client.post("/v1/batches", json=BATCH, headers=KEY)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.json()["size"] == len(again.json()["job_ids"]) == 6
    assert again.headers["location"] == f"/v1/batches/{first.json()['id']}"
    assert counts() == stored
    assert stored["jobs"] == 6
    assert broker_messages(settings) == 6
    # The job ids come in the order of the grid's points, as without a key.
    for job_id, (lr, seed) in zip(
        first.json()["job_ids"], [(lr, s) for lr in (0.5, 2.0) for s in (1, 2, 3)], strict=True
    ):
        point = client.get(f"/v1/jobs/{job_id}").json()["grid_point"]
        assert point == {"optimizer.learning_rate": lr, "seed": seed}


def test_a_batch_key_reused_with_another_grid_is_409(client, counts):
    first = client.post("/v1/batches", json=BATCH, headers=KEY).json()
    stored = counts()
    other = BATCH | {"grid": {"seed": [7, 8]}}
    r = client.post("/v1/batches", json=other, headers=KEY)
    assert r.status_code == 409
    assert "Idempotency-Key 'order-42' was used for a different request" in r.json()["message"]
    assert f"batch {first['id']}" in r.json()["message"]
    assert counts() == stored


def test_job_and_batch_keys_are_apart(client):
    """The same key on a job and on a batch names two different requests, each made once."""
    assert client.post("/v1/jobs", json=XOR_JOB, headers=KEY).status_code == 201
    assert client.post("/v1/batches", json=BATCH, headers=KEY).status_code == 201
