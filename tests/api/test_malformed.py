"""Hostile and malformed requests, one table: each gets the exact 4xx expected, a JSON `message`
that names the field in a sentence, and stores nothing — the row count of every table is the
same after it as before. On the embedded set-up and on PostgreSQL + Redis."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

from tests.api.conftest import Shared, shared_app
from tests.api.setups import SETUPS, setup
from tests.factories import XOR_JOB

# One xdist worker runs the table, so each set-up's database and client are made once.
pytestmark = pytest.mark.xdist_group("api-malformed")

XOR_X = [[0, 0], [0, 1], [1, 0], [1, 1]]
INLINE = {"inline": {"x": XOR_X, "y": [0, 1, 1, 0]}}
NO_SUCH = "00000000-0000-4000-8000-000000000000"
JSON = {"content-type": "application/json"}
CSV = {"content-type": "text/csv"}


class Bad(NamedTuple):
    method: str
    path: str  # `{job}` stands for a finished job's id
    status: int
    says: str  # a part of the message: the field, and what is wrong with it
    json: Any = None
    content: str | bytes | None = None
    params: dict | list | None = None
    headers: dict | None = None


def job(status: int, says: str, **changes: Any) -> Bad:
    return Bad("POST", "/v1/jobs", status, says, json=XOR_JOB | changes)


def raw_job(says: str, text: str, status: int = 422) -> Bad:
    """A job body as raw text: NaN, Infinity and 1e999 are not in JSON but Python reads them."""
    return Bad("POST", "/v1/jobs", status, says, content=text, headers=JSON)


def inline(x: Any, y: Any, **changes: Any) -> dict:
    return {"dataset": {"inline": {"x": x, "y": y}}} | changes


def cursor(value: Any) -> str:
    """A cursor the API never gave: well-formed base64url JSON with the wrong content."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def csv(text: str | bytes, status: int, says: str, params: Any = None, **kw: Any) -> Bad:
    body = text.encode() if isinstance(text, str) else text
    headers = kw.pop("headers", CSV)
    default = {"name": "t", "target": "y"}
    return Bad(
        "POST",
        "/v1/datasets/csv",
        status,
        says,
        content=body,
        params=params or default,
        headers=headers,
    )


XOR_TEXT = json.dumps(XOR_JOB)
CASES = {
    # --- POST /v1/jobs: the data ---
    "job-nan-in-data": raw_job(
        "dataset.inline.x.0.1: Input should be a finite number",
        XOR_TEXT[:-1] + ', "dataset": {"inline": {"x": [[0, NaN]], "y": [0]}}}',
    ),
    "job-infinity-in-y": raw_job(
        "dataset.inline.y.values.0: Input should be a finite number",
        XOR_TEXT[:-1] + ', "dataset": {"inline": {"x": [[0, 1]], "y": [-Infinity]}}}',
    ),
    "job-1e999-overflows-to-infinity": raw_job(
        "dataset.inline.x.0.0: Input should be a finite number",
        XOR_TEXT[:-1] + ', "dataset": {"inline": {"x": [[1e999, 1]], "y": [1]}}}',
    ),
    "job-ragged-rows": job(
        422, "dataset: inline x and y must be rectangular", **inline([[0, 1], [1]], [1, 0])
    ),
    "job-empty-x": job(422, "dataset.inline.x: List should have at least 1 item", **inline([], [])),
    "job-x-narrower-than-input-layer": job(
        422,
        "dataset: x must have shape (n_samples, 2) to match network.layers[0] = 2",
        **inline([[0], [1]], [0, 1]),
    ),
    "job-fewer-targets-than-samples": job(
        422, "dataset: y must have one row per sample of x (4)", **inline(XOR_X, [0, 1])
    ),
    "job-label-out-of-range": job(
        422,
        "dataset: y class labels must lie in 0..1",
        network={"layers": [2, 3, 2], "output_activation": "softmax"},
        loss="cross_entropy",
        **inline(XOR_X, [0, 1, 5, 0]),
    ),
    "job-bce-target-outside-0-1": job(
        422,
        "y holds targets outside [0, 1], which binary_cross_entropy cannot fit",
        loss="binary_cross_entropy",
        **inline(XOR_X, [0, 1, 2, 0]),
    ),
    "job-unknown-builtin": job(
        422, "dataset.builtin: Input should be 'xor'", dataset={"builtin": "mnist"}
    ),
    "job-dataset-id-not-a-uuid": job(
        422, "dataset.id: Input should be a valid UUID", dataset={"id": "42"}
    ),
    "job-dataset-a-list": job(
        422, "dataset: give one of {builtin: …}, {inline: {x, y}} or {id: …}", dataset=[1, 2]
    ),
    "job-dataset-of-no-kind": job(
        422, "dataset: give one of {builtin: …}", dataset={"path": "/etc/passwd"}
    ),
    "job-unknown-dataset-id": job(404, f"dataset {NO_SUCH} not found", dataset={"id": NO_SUCH}),
    # --- POST /v1/jobs: the spec ---
    "job-negative-learning-rate": job(
        422,
        "optimizer.sgd.learning_rate: Input should be greater than 0",
        optimizer={"learning_rate": -0.5},
    ),
    "job-zero-unit-layer": job(
        422,
        "network.layers.1: Input should be greater than or equal to 1",
        network={"layers": [2, 0, 1]},
    ),
    "job-10000-layers": job(
        422,
        "network.layers: 10,000 layers with parameters is over the limit of 100",
        network={"layers": [2] * 10_000 + [1]},
    ),
    "job-one-layer-only": job(
        422, "network.layers: List should have at least 2 items", network={"layers": [2]}
    ),
    "job-huge-epochs": job(
        422,
        "epochs: 1,000,000,000,000,000,000,000,000,000,000 epochs is over the limit",
        epochs=10**30,
    ),
    "job-huge-hidden-layer": job(
        422,
        "parameters is over the limit of 10,000,000 (DELTAFLOW_MAX_PARAMETERS)",
        network={"layers": [2, 10**12, 1]},
    ),
    "job-epochs-as-string": job(422, "epochs: Input should be a valid integer", epochs="100"),
    "job-epochs-as-float": job(422, "epochs: Input should be a valid integer", epochs=100.0),
    "job-shuffle-as-number": job(422, "shuffle: Input should be a valid boolean", shuffle=0),
    "job-layers-not-a-list": job(
        422, "network.layers: Input should be a valid list", network={"layers": "2,4,1"}
    ),
    "job-unknown-activation": job(
        422,
        "network.activation: Input should be 'sigmoid'",
        network={"layers": [2, 4, 1], "activation": "swish"},
    ),
    "job-softmax-with-mse": job(
        422,
        "network.output_activation 'softmax' needs loss 'cross_entropy'",
        network={"layers": [2, 4, 2], "output_activation": "softmax"},
    ),
    "job-unknown-field": job(422, "momentum: Extra inputs are not permitted", momentum=0.9),
    "job-unknown-nested-field": job(
        422,
        "network.dropout: Extra inputs are not permitted",
        network={"layers": [2, 4, 1], "dropout": 0.5},
    ),
    "job-seed-negative": job(422, "seed: Input should be greater than or equal to 0", seed=-1),
    "job-validation-split-1": job(
        422, "validation_split: Input should be less than 1", validation_split=1.0
    ),
    # --- POST /v1/jobs: names, tags, headers, the body itself ---
    "job-name-too-long": job(
        422, "name: String should have at most 200 characters", name="n" * 201
    ),
    "job-name-with-nul": job(422, "name: must not hold control characters (U+0000", name="a\x00b"),
    "job-name-with-terminal-escape": job(
        422, "name: must not hold control characters (U+001B", name="\x1b[2Jhi"
    ),
    "job-tag-key-with-colon": job(422, "must not hold ':'", tags={"team:x": "ml"}),
    "job-too-many-tags": job(
        422,
        "tags: Dictionary should have at most 50 items",
        tags={f"k{i}": "v" for i in range(51)},
    ),
    "job-idempotency-key-too-long": Bad(
        "POST",
        "/v1/jobs",
        422,
        "header.Idempotency-Key: String should have at most 200",
        json=XOR_JOB,
        headers={"Idempotency-Key": "k" * 201},
    ),
    "job-bad-json": raw_job("body: is not valid JSON", '{"name": "x", "network": ', 422),
    "job-not-utf8": Bad(
        "POST",
        "/v1/jobs",
        422,
        "body: is not UTF-8 text",
        content=b'{"name": "\xff"}',
        headers=JSON,
    ),
    "job-deeply-nested": raw_job("body: nests arrays or objects too deeply", "[" * 100_000),
    "job-body-is-a-list": Bad(
        "POST", "/v1/jobs", 422, "body: Input should be a valid dictionary", json=[XOR_JOB]
    ),
    "job-wrong-content-type": Bad(
        "POST",
        "/v1/jobs",
        422,
        "body: Input should be a valid dictionary",
        content=XOR_TEXT,
        headers={"content-type": "text/plain"},
    ),
    "job-wrong-method": Bad(
        "PUT", "/v1/jobs", 405, "PUT is not a method of /v1/jobs; it takes GET"
    ),
    # --- POST /v1/datasets: JSON ---
    "dataset-nan": Bad(
        "POST",
        "/v1/datasets",
        422,
        "x.0.0: Input should be a finite number",
        content='{"name": "d", "x": [[NaN]], "y": [1]}',
        headers=JSON,
    ),
    "dataset-ragged": Bad(
        "POST",
        "/v1/datasets",
        422,
        "x: must be rectangular: row 0 has length 2 but row 1 has 1",
        json={"name": "d", "x": [[0, 1], [1]], "y": [0, 1]},
    ),
    "dataset-empty-row": Bad(
        "POST",
        "/v1/datasets",
        422,
        "x.0: List should have at least 1 item",
        json={"name": "d", "x": [[]], "y": [0]},
    ),
    "dataset-y-length": Bad(
        "POST",
        "/v1/datasets",
        422,
        "y: must have one row per sample of x (2), got 3 rows",
        json={"name": "d", "x": [[0], [1]], "y": [0, 1, 1]},
    ),
    "dataset-unknown-field": Bad(
        "POST",
        "/v1/datasets",
        422,
        "labels: Extra inputs are not permitted",
        json={"name": "d", "x": [[0]], "y": [0], "labels": ["a"]},
    ),
    "dataset-deeply-nested": Bad(
        "POST",
        "/v1/datasets",
        422,
        "body: is JSON this API does not read",
        content="[" * 100_000,
        headers=JSON,
    ),
    "dataset-huge-integer": Bad(
        "POST",
        "/v1/datasets",
        422,
        "body: is JSON this API does not read",
        content='{"name": "d", "x": [[' + "9" * 5000 + ']], "y": [0]}',
        headers=JSON,
    ),
    "dataset-json-with-csv-parameters": Bad(
        "POST",
        "/v1/datasets",
        422,
        "query.target: is a parameter of POST /v1/datasets/csv",
        json={"name": "d", "x": [[0]], "y": [0]},
        params={"target": "y"},
    ),
    "dataset-wrong-content-type": Bad(
        "POST",
        "/v1/datasets",
        415,
        "this operation reads a body in application/json, not with content type 'text/plain'",
        content="x,y\n1,2\n",
        headers={"content-type": "text/plain"},
    ),
    "dataset-csv-at-the-json-operation": Bad(
        "POST",
        "/v1/datasets",
        415,
        "POST /v1/datasets/csv reads text/csv",
        content="x,y\n1,2\n",
        headers=CSV,
    ),
    # --- POST /v1/datasets: CSV ---
    "csv-empty": csv("", 422, "body: the CSV is empty"),
    "csv-header-only": csv("x,y\n", 422, "body: the CSV has a header but no data lines"),
    "csv-ragged-line": csv("x,y\n1,2\n3\n", 422, "body: line 3 has 1 fields but the header has 2"),
    "csv-not-a-number": csv("x,y\n1,two\n", 422, "body: line 2, column 'y': 'two' is not a number"),
    "csv-infinity": csv("x,y\n1,inf\n", 422, "line 2, column 'y': 'inf' is not a finite number"),
    "csv-nan": csv("x,y\nnan,1\n", 422, "line 2, column 'x': 'nan' is not a finite number"),
    "csv-nul-byte": csv("x,y\n1,\x002\n", 422, "body: line 2"),
    "csv-not-utf8": csv(b"x,y\n1,\xff\n", 422, "body: is not UTF-8 text"),
    "csv-duplicate-column": csv("x,x,y\n1,2,3\n", 422, "the header names column 'x' twice"),
    "csv-unknown-target": csv(
        "x,y\n1,2\n",
        422,
        "query.target: the CSV has no column 'label'",
        params={"name": "t", "target": "label"},
    ),
    "csv-every-column-a-target": csv(
        "x,y\n1,2\n",
        422,
        "query.target: every column is a target",
        params=[("name", "t"), ("target", "x"), ("target", "y")],
    ),
    "csv-without-target": csv(
        "x,y\n1,2\n", 422, "query.target: Field required", params={"name": "t"}
    ),
    "csv-without-name": csv(
        "x,y\n1,2\n", 422, "query.name: Field required", params={"target": "y"}
    ),
    "csv-name-with-control-character": csv(
        "x,y\n1,2\n",
        422,
        "query.name: must not hold control characters",
        params={"name": "a\x07", "target": "y"},
    ),
    # --- POST /v1/batches ---
    "batch-unknown-grid-path": Bad(
        "POST",
        "/v1/batches",
        422,
        "grid.optimizer.lr: 'optimizer.lr' is not a field",
        json={"name": "b", "base": XOR_JOB, "grid": {"optimizer.lr": [0.1]}},
    ),
    "batch-empty-grid-values": Bad(
        "POST",
        "/v1/batches",
        422,
        "grid.seed: give at least one value",
        json={"name": "b", "base": XOR_JOB, "grid": {"seed": []}},
    ),
    "batch-bad-grid-point": Bad(
        "POST",
        "/v1/batches",
        422,
        "grid: grid point {'optimizer.learning_rate': -1}: optimizer.sgd.learning_rate",
        json={"name": "b", "base": XOR_JOB, "grid": {"optimizer.learning_rate": [0.5, -1]}},
    ),
    "batch-grid-too-large": Bad(
        "POST",
        "/v1/batches",
        422,
        "grid: the grid has 1001 points, more than the limit of 1000",
        json={"name": "b", "base": XOR_JOB, "grid": {"seed": list(range(1001))}},
    ),
    "batch-base-without-dataset": Bad(
        "POST",
        "/v1/batches",
        422,
        "base.dataset: Field required",
        json={"name": "b", "base": {k: v for k, v in XOR_JOB.items() if k != "dataset"}},
    ),
    "batch-base-nan-in-data": Bad(
        "POST",
        "/v1/batches",
        422,
        "base.dataset.inline.x.0.0: Input should be a finite number",
        content=json.dumps({"name": "b", "base": XOR_JOB | inline([[float("nan"), 0]], [0])}),
        headers=JSON,
    ),
    # --- predict ---
    "predict-wrong-width": Bad(
        "POST",
        "/v1/jobs/{job}/predict",
        422,
        "x.1: each row of x needs 2 values",
        json={"x": [[0, 1], [1]]},
    ),
    "predict-nan": Bad(
        "POST",
        "/v1/jobs/{job}/predict",
        422,
        "x.0.0: Input should be a finite number",
        content='{"x": [[NaN, 1]]}',
        headers=JSON,
    ),
    "predict-empty": Bad(
        "POST", "/v1/jobs/{job}/predict", 422, "x: List should have at least 1 item", json={"x": []}
    ),
    "predict-epoch-past-the-database": Bad(
        "POST",
        "/v1/jobs/{job}/predict",
        422,
        "epoch: Input should be less than or equal to",
        json={"x": [[0, 1]], "epoch": 2**40},
    ),
    "predict-epoch-as-string": Bad(
        "POST",
        "/v1/jobs/{job}/predict",
        422,
        "epoch: Input should be a valid integer",
        json={"x": [[0, 1]], "epoch": "1"},
    ),
    # --- list and history query parameters ---
    "list-unknown-status": Bad(
        "GET",
        "/v1/jobs",
        422,
        "query.status.0: Input should be 'queued'",
        params={"status": "done"},
    ),
    "list-unknown-order": Bad(
        "GET",
        "/v1/jobs",
        422,
        "query.order_by: Input should be 'created_at'",
        params={"order_by": "name; DROP TABLE jobs"},
    ),
    "list-limit-zero": Bad(
        "GET", "/v1/jobs", 422, "query.limit: Input should be greater than", params={"limit": 0}
    ),
    "list-cursor-not-base64": Bad(
        "GET", "/v1/jobs", 422, "query.cursor: cursor is not one", params={"cursor": "%%%"}
    ),
    "list-cursor-with-a-list-for-a-time": Bad(
        "GET",
        "/v1/jobs",
        422,
        "query.cursor: cursor is not one this API gave out",
        params={
            "cursor": cursor({"order": "-created_at", "segment": 0, "value": [1], "id": NO_SUCH})
        },
    ),
    "list-cursor-with-text-for-a-loss": Bad(
        "GET",
        "/v1/jobs",
        422,
        "query.cursor: cursor is not one this API gave out",
        params={
            "order_by": "final_loss",
            "cursor": cursor({"order": "final_loss", "segment": 0, "value": "x", "id": NO_SUCH}),
        },
    ),
    "list-cursor-too-long": Bad(
        "GET",
        "/v1/datasets",
        422,
        "query.cursor: String should have at most 1000",
        params={"cursor": "a" * 1001},
    ),
    "list-created-after-not-a-time": Bad(
        "GET",
        "/v1/jobs",
        422,
        "query.created_after: must be an ISO 8601 time",
        params={"created_after": "0.5"},
    ),
    "list-created-after-before-year-1": Bad(
        "GET",
        "/v1/jobs",
        422,
        "query.created_after: is out of the range of times",
        params={"created_after": "0001-01-01T00:00:00+01:00"},
    ),
    "list-tag-without-colon": Bad(
        "GET", "/v1/jobs", 422, "query.tag.0: must be `key:value`", params={"tag": "team"}
    ),
    "list-name-with-nul": Bad(
        "GET",
        "/v1/jobs",
        422,
        "query.name: must not hold control characters",
        params={"name": "\x00"},
    ),
    "list-batch-id-not-a-uuid": Bad(
        "GET",
        "/v1/jobs",
        422,
        "query.batch_id: Input should be a valid UUID",
        params={"batch_id": "1 OR 1=1"},
    ),
    "epochs-end-past-the-database": Bad(
        "GET",
        "/v1/jobs/{job}/epochs",
        422,
        "query.end: Input should be less than or equal to",
        params={"end": 2**40},
    ),
    "epochs-cursor-past-the-database": Bad(
        "GET",
        "/v1/jobs/{job}/epochs",
        422,
        "query.cursor: cursor is not one this API gave out",
        params={"cursor": cursor(2**40)},
    ),
    "epochs-cursor-1e999": Bad(
        "GET",
        "/v1/jobs/{job}/epochs",
        422,
        "query.cursor: cursor is not one this API gave out",
        params={"cursor": base64.urlsafe_b64encode(b"1e999").decode()},
    ),
    "epochs-unknown-field": Bad(
        "GET",
        "/v1/jobs/{job}/epochs",
        422,
        "query.fields: unknown field(s) weights",
        params={"fields": "loss,weights"},
    ),
    "epochs-too-few-points": Bad(
        "GET",
        "/v1/jobs/{job}/epochs",
        422,
        "query.points: Input should be greater than or equal to 4",
        params={"points": 2},
    ),
    "snapshot-epoch-not-a-number": Bad(
        "GET", "/v1/jobs/{job}/snapshots/first", 422, "path.epoch: String should match pattern"
    ),
    "snapshot-epoch-past-the-database": Bad(
        "GET", "/v1/jobs/{job}/snapshots/9999999999", 404, "has no snapshot at epoch 9999999999"
    ),
    "trajectory-layer-out-of-range": Bad(
        "GET",
        "/v1/jobs/{job}/trajectory",
        422,
        "query.layer: layer must be 1..2, got 3",
        params={"layer": 3, "param": "weight", "k": 0, "j": 0},
    ),
    "trajectory-unknown-param": Bad(
        "GET",
        "/v1/jobs/{job}/trajectory",
        422,
        "query.param: Input should be 'weight' or 'bias'",
        params={"layer": 1, "param": "gamma", "k": 0},
    ),
    "events-last-event-id-past-the-database": Bad(
        "GET",
        "/v1/jobs/{job}/events",
        422,
        "header.last-event-id: Input should be less than",
        headers={"Last-Event-ID": str(2**40)},
    ),
    # --- path ids ---
    "job-id-not-a-uuid": Bad(
        "GET", "/v1/jobs/42", 422, "path.job_id: Input should be a valid UUID"
    ),
    "job-id-unknown": Bad("GET", f"/v1/jobs/{NO_SUCH}", 404, f"job {NO_SUCH} not found"),
    "dataset-id-not-a-uuid": Bad(
        "GET", "/v1/datasets/x'--", 422, "path.dataset_id: Input should be a valid UUID"
    ),
    "batch-id-unknown": Bad("GET", f"/v1/batches/{NO_SUCH}", 404, f"batch {NO_SUCH} not found"),
    "cancel-unknown-job": Bad(
        "POST", f"/v1/jobs/{NO_SUCH}/cancel", 404, f"job {NO_SUCH} not found"
    ),
    "cancel-finished-job": Bad(
        "POST", "/v1/jobs/{job}/cancel", 409, "has already ended (succeeded)"
    ),
    "delete-unknown-job": Bad("DELETE", f"/v1/jobs/{NO_SUCH}", 404, f"job {NO_SUCH} not found"),
}


@pytest.fixture(scope="module", params=SETUPS)
def shared(request, databases, redis_indexes, tmp_path_factory) -> Iterator[Shared]:
    """One database per set-up for the whole table."""
    directory = tmp_path_factory.mktemp("bad")
    with setup(request.param, databases, redis_indexes, directory) as s, shared_app(s) as found:
        yield found


@pytest.mark.parametrize("bad", CASES.values(), ids=CASES.keys())
def test_a_malformed_request_is_refused_with_a_sentence_and_stores_nothing(bad: Bad, shared):
    path = bad.path.replace("{job}", shared.finished_job["id"]) if "{job}" in bad.path else bad.path
    before = shared.counts()
    r = shared.client.request(
        bad.method,
        path,
        json=bad.json,
        content=bad.content,
        params=bad.params,
        headers=bad.headers,
    )
    assert r.status_code == bad.status, r.text
    assert r.headers["content-type"] == "application/json"
    message = r.json()["message"]
    assert bad.says in message, message
    assert shared.counts() == before
