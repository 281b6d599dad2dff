"""Batch search spaces (issue 14): sampled values next to the grid's, deterministic given the
batch's seed and recorded on each job; bad spaces refused naming the path, nothing stored."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.factories import XOR_JOB
from tune.space import Choice, LogUniform, RandInt, Uniform, expand

BASE = XOR_JOB | {"epochs": 5, "snapshot_every": 5}
SPACE = {
    "optimizer.learning_rate": {"loguniform": [1e-3, 1.0]},
    "l2": {"uniform": [0.0, 0.5]},
    "batch_size": {"choice": [1, 2, 4]},
    "seed": {"randint": [0, 1000]},
}


def _create(client, **body):
    return client.post("/v1/batches", json={"name": "search", "base": BASE} | body)


def _points(client, batch) -> list[dict]:
    return [client.get(f"/v1/jobs/{j}").json() for j in batch["job_ids"]]


def test_samples_expand_the_grid_and_are_recorded_on_each_job(client):
    body = {"grid": {"network.layers": [[2, 3, 1], [2, 6, 1]]}, "space": SPACE,
            "num_samples": 6, "seed": 11}  # fmt: skip
    r = _create(client, **body)
    assert r.status_code == 201, r.text
    batch = r.json()
    assert batch["size"] == len(batch["job_ids"]) == 12
    jobs = _points(client, batch)
    for job in jobs:
        point, spec = job["grid_point"], job["spec"]
        assert set(point) == {"network.layers", *SPACE}
        assert spec["optimizer"]["learning_rate"] == point["optimizer.learning_rate"]
        assert 1e-3 <= point["optimizer.learning_rate"] < 1.0
        assert 0.0 <= spec["l2"] == point["l2"] < 0.5
        assert spec["batch_size"] == point["batch_size"] in (1, 2, 4)
        assert spec["seed"] == point["seed"] and isinstance(point["seed"], int)
    # each sample expands the whole grid, in grid order
    assert [j["grid_point"]["network.layers"][1] for j in jobs] == [3, 6] * 6
    # the same body draws the same points; another seed others
    again = _points(client, _create(client, **body).json())
    assert [j["grid_point"] for j in again] == [j["grid_point"] for j in jobs]
    other = _points(client, _create(client, **body | {"seed": 12}).json())
    assert [j["grid_point"] for j in other] != [j["grid_point"] for j in jobs]
    shown = client.get(f"/v1/batches/{batch['id']}").json()
    assert (shown["space"], shown["num_samples"], shown["seed"]) == (SPACE, 6, 11)


def test_a_repeated_request_answers_the_jobs_in_the_same_order(client):
    body = {"space": SPACE, "num_samples": 5, "seed": 3}
    headers = {"Idempotency-Key": "search-1"}
    first = client.post("/v1/batches", json={"name": "s", "base": BASE} | body, headers=headers)
    again = client.post("/v1/batches", json={"name": "s", "base": BASE} | body, headers=headers)
    assert again.status_code == 200
    assert again.json()["job_ids"] == first.json()["job_ids"]


def test_draws_follow_their_distributions():
    rng_points = expand(
        [{}],
        {"u": Uniform(uniform=[2.0, 3.0]), "l": LogUniform(loguniform=[1e-4, 1.0]),
         "r": RandInt(randint=[5, 8]), "c": Choice(choice=["a", "b"])},
        4000,
        0,
    )  # fmt: skip
    u = np.array([p["u"] for p in rng_points])
    logs = np.log10([p["l"] for p in rng_points])
    assert u.min() >= 2.0 and u.max() < 3.0 and abs(u.mean() - 2.5) < 0.02
    assert logs.min() >= -4 and logs.max() < 0 and abs(logs.mean() + 2) < 0.05
    assert {p["r"] for p in rng_points} == {5, 6, 7}
    assert {p["c"] for p in rng_points} == {"a", "b"}
    assert math.isclose(sum(p["c"] == "a" for p in rng_points) / 4000, 0.5, abs_tol=0.03)


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        ({"space": {"l2": {"choice": []}}}, "space.l2", "at least 1"),
        ({"space": {"l2": {"uniform": [0.5, 0.5]}}}, "space.l2", "low must be below high"),
        ({"space": {"l2": {"loguniform": [0.0, 1.0]}}}, "space.l2", "low > 0"),
        ({"space": {"seed": {"randint": [9, 3]}}}, "space.seed", "low must be below high"),
        ({"space": {"l2": {"normal": [0, 1]}}}, "space.l2", "give one of"),
        ({"space": {"optimizer.lr": {"uniform": [0, 1]}}}, "space.optimizer.lr", "not a field"),
        ({"space": {"l2": {"uniform": [-1.0, 1.0]}}}, "space", "l2"),
        ({"space": {"epochs": {"choice": [5, 0]}}}, "space", "epochs"),
        ({"space": {"l2": {"choice": [0.1]}}, "grid": {"l2": [0.2]}}, "space.l2", "grid too"),
        ({"space": SPACE, "num_samples": 100_000}, "num_samples", "DELTAFLOW_MAX_GRID_POINTS"),
    ],
)
def test_bad_spaces_are_refused_naming_the_path(client, counts, body, where, words):
    before = counts()
    r = _create(client, **body)
    assert r.status_code == 422, r.text
    error = r.json()["detail"][0]
    assert ".".join(map(str, error["loc"])).startswith(f"body.{where}"), error
    assert words in error["msg"], error
    assert counts() == before
