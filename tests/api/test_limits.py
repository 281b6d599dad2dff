"""Limits on what one request may ask: 413 for a body too large, 422 naming each limit."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.factories import XOR_JOB


@pytest.fixture
def small(settings):
    limited = settings.model_copy(
        update={
            "max_request_bytes": 4096,
            "max_epochs": 1000,
            "max_layers": 3,
            "max_parameters": 200,
            "max_data_values": 10,
        }
    )
    with TestClient(create_app(limited)) as c:
        yield c


def test_a_body_over_the_limit_is_refused_before_parsing(small, counts):
    x = [[0.0, 1.0]] * 400  # about 5 KB of JSON
    body = XOR_JOB | {"dataset": {"inline": {"x": x, "y": [0.0] * 400}}}
    r = small.post("/v1/jobs", json=body)
    assert r.status_code == 413
    size = len(r.request.content)
    assert r.json()["message"] == (
        f"the request body of {size:,} bytes is over the limit of 4,096 bytes "
        "(DELTAFLOW_MAX_REQUEST_BYTES)"
    )
    assert r.json()["detail"] == r.json()["message"]
    assert counts()["jobs"] == 0


def test_a_streamed_body_is_cut_off_at_the_limit(small, counts):
    """Without a Content-Length the body is counted as it arrives, and refused on the chunk
    that passes the limit."""

    def chunks():
        yield b"x,y\n"
        for _ in range(1000):
            yield b"0.5,1\n"

    headers = {"content-type": "text/csv"}
    r = small.post("/v1/datasets/csv", content=chunks(), params={"name": "d", "target": "y"},
                   headers=headers)  # fmt: skip
    assert "content-length" not in r.request.headers
    assert r.status_code == 413
    assert r.json()["message"] == (
        "the request body is over the limit of 4,096 bytes (DELTAFLOW_MAX_REQUEST_BYTES)"
    )
    assert counts()["datasets"] == 0


def test_a_body_within_the_limit_is_read(small):
    r = small.post("/v1/jobs", json=XOR_JOB | {"epochs": 10})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (
            {"epochs": 1001},
            "epochs: 1,001 epochs is over the limit of 1,000 (DELTAFLOW_MAX_EPOCHS)",
        ),
        (
            {"network": {"layers": [2, 2, 2, 2, 1]}},
            "4 layers with parameters is over the limit of 3",
        ),
        (
            {"network": {"layers": [2, 60, 1]}},  # 3·60 + 61·1 weights and biases
            "241 parameters is over the limit of 200 (DELTAFLOW_MAX_PARAMETERS)",
        ),
    ],
)
def test_job_limits_name_the_limit_and_the_value(small, counts, changes, says):
    r = small.post("/v1/jobs", json=XOR_JOB | changes)
    assert r.status_code == 422, r.text
    assert says in r.json()["message"]
    assert counts()["jobs"] == 0


def test_the_data_limit(small, counts):
    body = XOR_JOB | {"dataset": {"builtin": "moons", "n": 10}}
    r = small.post("/v1/jobs", json=body)
    assert r.status_code == 422
    assert (
        "dataset: 20 data values (samples × features) is over the limit of 10"
        in r.json()["message"]
    )
    assert counts()["datasets"] == 0


def test_a_batch_point_over_a_limit(small, counts):
    body = {"name": "big", "base": XOR_JOB, "grid": {"epochs": [10, 5000]}}
    r = small.post("/v1/batches", json=body)
    assert r.status_code == 422
    assert "grid.epochs: 5,000 epochs is over the limit" in r.json()["message"]
    assert counts()["jobs"] == 0
