"""Binary data sets: POST /v1/datasets/npz and /v1/datasets/parquet store what the JSON upload
stores, refuse what it refuses with the same sentences, and have their own size limit."""

from __future__ import annotations

import io
import uuid
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from api import uploads
from api.app import create_app
from models import datasets as stored
from models.datasets import dataset_arrays, dataset_sha256
from tests.api.setups import SETUPS, setup
from tests.factories import XOR_JOB

NPZ = {"content-type": "application/octet-stream"}
PARQUET = {"content-type": "application/vnd.apache.parquet"}
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_Y = np.array([0, 1, 1, 0], dtype=np.int64)


def npz(compressed: bool = False, **arrays) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def parquet(table: dict) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(table), buffer, row_group_size=3)
    return buffer.getvalue()


def _stored(sessions, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
    with sessions() as s:
        return dataset_arrays(s, uuid.UUID(dataset_id))


@pytest.fixture(params=SETUPS)
def both(request, databases, redis_indexes, tmp_path):
    """A client on each set-up (SQLite, and PostgreSQL where it runs)."""
    with (
        setup(request.param, databases, redis_indexes, tmp_path) as s,
        TestClient(create_app(s)) as c,
    ):
        yield c


def test_npz_float32_is_stored_as_the_json_upload_stores_it(both):
    r = both.post("/v1/datasets/npz", params={"name": "xor"}, content=npz(x=XOR_X, y=XOR_Y),
                  headers=NPZ)  # fmt: skip
    assert r.status_code == 201, r.text
    made = r.json()
    assert r.headers["location"] == f"/v1/datasets/{made['id']}"
    assert (made["n_samples"], made["n_features"], made["n_outputs"]) == (4, 2, 1)
    as_json = {"name": "xor", "x": XOR_X.tolist(), "y": XOR_Y.tolist()}
    again = both.post("/v1/datasets", json=as_json)
    assert again.status_code == 200  # the same content: the same row
    assert again.json()["id"] == made["id"]
    assert again.json()["sha256"] == made["sha256"]


def test_npz_compressed_2d_targets_and_fortran_order(client, sessions):
    rng = np.random.default_rng(0)
    x = np.asfortranarray(rng.normal(size=(50, 3)))
    y = rng.normal(size=(50, 2)).astype(np.float32)
    r = client.post("/v1/datasets/npz", params={"name": "r"}, headers=NPZ,
                    content=npz(compressed=True, x=x, y=y))  # fmt: skip
    assert r.status_code == 201, r.text
    sx, sy = _stored(sessions, r.json()["id"])
    assert np.array_equal(sx, x)
    assert np.array_equal(sy, y.astype(np.float64))


def test_parquet_with_two_targets(client, sessions):
    table = {"a": [0.5, 1.5, 2.5, 3.5], "t1": [1, 0, 1, 0], "b": np.arange(4, dtype=np.int32),
             "t2": np.array([0.25, 0.5, 0.75, 1.0], np.float32)}  # fmt: skip
    r = client.post("/v1/datasets/parquet", params={"name": "p", "target": ["t2", "t1"]},
                    content=parquet(table), headers=PARQUET)  # fmt: skip
    assert r.status_code == 201, r.text
    assert (r.json()["n_features"], r.json()["n_outputs"]) == (2, 2)
    x, y = _stored(sessions, r.json()["id"])
    assert x.tolist() == [[0.5, 0], [1.5, 1], [2.5, 2], [3.5, 3]]
    assert y.tolist() == [[0.25, 1], [0.5, 0], [0.75, 1], [1.0, 0]]


def test_an_npz_data_set_trains_and_labels_out_of_range_are_refused_as_for_json(client, counts):
    bad = client.post("/v1/datasets/npz", params={"name": "bad"}, headers=NPZ,
                      content=npz(x=XOR_X, y=np.array([0, 1, 1, 7])))  # fmt: skip
    via_json = client.post("/v1/datasets", json={"name": "bad", "x": XOR_X.tolist(),
                                                  "y": [0, 1, 1, 7]})  # fmt: skip
    assert via_json.json()["id"] == bad.json()["id"]
    network = {"layers": [2, 4, 2], "output_activation": "softmax"}
    body = XOR_JOB | {"network": network, "loss": "cross_entropy"}
    good = client.post("/v1/datasets/npz", params={"name": "ok"}, headers=NPZ,
                       content=npz(x=XOR_X, y=XOR_Y))  # fmt: skip
    assert client.post("/v1/jobs", json=body | {"dataset": {"id": good.json()["id"]}}).is_success
    before = counts()
    r = client.post("/v1/jobs", json=body | {"dataset": {"id": bad.json()["id"]}})
    assert r.status_code == 422, r.text
    assert "y class labels must lie in 0..1" in r.json()["message"], r.json()["message"]
    assert counts() == before


@pytest.fixture
def tiny_chunks(monkeypatch):
    """Chunks of 7 values read and 40 bytes written: every upload spans many, none aligned
    with a row."""
    monkeypatch.setattr(uploads, "CHUNK_VALUES", 7)
    monkeypatch.setattr(stored, "CHUNK_BYTES", 40)


def test_uploads_are_read_and_written_a_chunk_at_a_time_exactly(both, tiny_chunks):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(103, 5)).astype(np.float32), rng.integers(0, 3, 103)
    cases = [
        ("npz", npz(compressed=True, x=x, y=y), {}),
        ("npz", npz(x=np.asfortranarray(x.astype(np.float64)) * 2, y=y), {}),
        ("parquet", parquet({**{f"f{j}": x[:, j] for j in range(5)}, "label": y}),
         {"target": "label"}),
    ]  # fmt: skip
    ids = []
    for (kind, body, params), factor in zip(cases, (1, 2, 1), strict=True):
        r = both.post(f"/v1/datasets/{kind}", params={"name": kind, **params}, content=body,
                      headers=NPZ if kind == "npz" else PARQUET)  # fmt: skip
        assert r.status_code in (200, 201), r.text
        ids.append(r.json()["id"])
        got = both.get(f"/v1/datasets/{r.json()['id']}").json()
        assert got["sha256"] == dataset_sha256(x.astype(np.float64) * factor, y), kind
        sx, sy = _stored(both.app.state.sessions, r.json()["id"])
        assert np.array_equal(sx, x.astype(np.float64) * factor) and np.array_equal(sy, y), kind
    assert ids[0] == ids[2] != ids[1]  # the npz and the Parquet file hold the same content


def test_a_bad_value_in_a_late_chunk_is_refused_with_its_index(both, tiny_chunks):
    x = np.ones((103, 5), dtype=np.float32)
    x[101, 3] = np.nan
    r = both.post("/v1/datasets/npz", params={"name": "nan"}, content=npz(x=x, y=np.zeros(103)),
                  headers=NPZ)  # fmt: skip
    assert r.status_code == 422, r.text
    assert r.json()["message"] == "x.101.3: Input should be a finite number"
    assert both.get("/v1/datasets").json()["items"] == []


def _damaged() -> bytes:
    whole = npz(x=XOR_X, y=XOR_Y)
    return whole[: len(whole) // 2]


def _bad_header() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("x.npy", b"not an npy header")
        z.writestr("y.npy", b"")
    return buffer.getvalue()


def _truncated() -> bytes:
    good = io.BytesIO()
    np.lib.format.write_array(good, XOR_X)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("x.npy", good.getvalue()[:-4])
        z.writestr("y.npy", b"")
    return buffer.getvalue()


NAN_X = XOR_X.copy()
NAN_X[2, 1] = np.nan
INF_Y = XOR_Y.astype(np.float64)
INF_Y[3] = np.inf
BAD_NPZ = [
    (b"plain bytes", 422, "body: is not an .npz file"),
    (_damaged(), 422, "body: is not an .npz file"),
    (npz(x=XOR_X), 422, "the .npz file has no array 'y'; its arrays are 'x'"),
    (npz(a=XOR_X, y=XOR_Y), 422, "has no array 'x'"),
    (_bad_header(), 422, "x: is not a .npy array (x.npy)"),
    (_truncated(), 422, "x: is truncated or has trailing bytes"),
    (npz(x=XOR_X[:, 0], y=XOR_Y), 422, "x: must be 2-D"),
    (npz(x=XOR_X, y=XOR_Y[:3]), 422, "y: must have one row per sample of x (4), got 3"),
    (npz(x=XOR_X, y=np.zeros((4, 1, 1))), 422, "y: must be 1-D or 2-D"),
    (npz(x=NAN_X, y=XOR_Y), 422, "x.2.1: Input should be a finite number"),
    (npz(x=XOR_X, y=INF_Y), 422, "y.3: Input should be a finite number"),
    (npz(x=XOR_X.astype(bool), y=XOR_Y), 422, "x: must hold integers or floating-point"),
    (npz(x=np.array([["a", "b"]] * 4), y=XOR_Y), 422, "not dtype '<U1'"),
    (npz(x=XOR_X.astype(complex), y=XOR_Y), 422, "not dtype '<c16'"),
    (npz(x=np.array([[1, None]] * 4), y=XOR_Y), 422, "not dtype '|O'"),  # never unpickled
]


@pytest.mark.parametrize(("body", "status", "says"), BAD_NPZ, ids=[c[2] for c in BAD_NPZ])
def test_bad_npz_uploads_say_why_and_store_nothing(shared, body, status, says):
    before = shared.counts()
    r = shared.client.post("/v1/datasets/npz", params={"name": "t"}, content=body, headers=NPZ)
    assert r.status_code == status, r.text
    assert says in r.json()["message"], r.json()["message"]
    assert shared.counts() == before


BAD_PARQUET = [
    (b"PAR1 but not really", {"target": "y"}, "body: is not a Parquet file"),
    (
        {"a": [1.0, 2.0], "y": [0, 1]},
        {"target": "z"},
        "query.target: the Parquet file has no column 'z'; its columns are 'a', 'y'",
    ),
    ({"a": [1.0, 2.0], "y": [0, 1]}, {"target": ["a", "y"]}, "every column is a target"),
    ({"a": ["p", "q"], "y": [0, 1]}, {"target": "y"}, "column 'a' holds string, not numbers"),
    (
        {"a": [1.0, None, 3.0, 4.0], "y": [0, 1, 0, 1]},
        {"target": "y"},
        "row 1, column 'a': a missing value is not a number",
    ),
    (
        {"a": [1.0, 2.0, 3.0, float("inf")], "y": [0, 1, 0, 1]},
        {"target": "y"},
        "row 3, column 'a': inf is not a finite number",
    ),
    (
        {"a": pa.array([], pa.float64()), "y": pa.array([], pa.int64())},
        {"target": "y"},
        "the Parquet file has columns but no rows",
    ),
    ({"a": [1.0], "y": [0]}, {}, "query.target: Field required"),
]


@pytest.mark.parametrize(("table", "params", "says"), BAD_PARQUET, ids=[c[2] for c in BAD_PARQUET])
def test_bad_parquet_uploads_say_why_and_store_nothing(shared, table, params, says):
    before = shared.counts()
    body = table if isinstance(table, bytes) else parquet(table)
    r = shared.client.post("/v1/datasets/parquet", params={"name": "t"} | params, content=body,
                           headers=PARQUET)  # fmt: skip
    assert r.status_code == 422, r.text
    assert says in r.json()["message"], r.json()["message"]
    assert shared.counts() == before


@pytest.mark.parametrize(
    ("path", "media", "says"),
    [
        (
            "/v1/datasets/npz",
            "text/csv",
            "reads a body in application/octet-stream, not with "
            "content type 'text/csv'; POST /v1/datasets/csv reads text/csv",
        ),
        (
            "/v1/datasets/parquet",
            "application/octet-stream",
            "POST /v1/datasets/npz reads application/octet-stream",
        ),
        ("/v1/datasets", "application/vnd.apache.parquet", "POST /v1/datasets/parquet reads"),
    ],
)
def test_each_binary_operation_names_the_one_for_another_media_type(shared, path, media, says):
    before = shared.counts()
    r = shared.client.post(path, params={"name": "t", "target": "y"}, content=b"x",
                           headers={"content-type": media})  # fmt: skip
    assert r.status_code == 415, r.text
    assert says in r.json()["message"], r.json()["message"]
    assert shared.counts() == before


@pytest.fixture
def small(settings):
    limited = settings.model_copy(
        update={"max_request_bytes": 4096, "max_upload_bytes": 64 << 10, "max_data_values": 100}
    )
    with TestClient(create_app(limited)) as c:
        yield c


def test_binary_uploads_have_their_own_size_limit(small, counts):
    x = np.zeros((40, 2))  # 80 values: under max_data_values, its .npz over 4 KiB
    body = npz(x=x, y=np.zeros(40)) + b"\0" * 5000
    assert 4096 < len(body) < 64 << 10
    r = small.post("/v1/datasets/npz", params={"name": "t"}, content=body, headers=NPZ)
    assert r.status_code != 413, r.text  # the JSON limit does not apply
    big = b"\0" * ((64 << 10) + 1)
    r = small.post("/v1/datasets/npz", params={"name": "t"}, content=big, headers=NPZ)
    assert r.status_code == 413
    assert r.json()["message"] == (
        f"the request body of {len(big):,} bytes is over the limit of 65,536 bytes "
        "(DELTAFLOW_MAX_UPLOAD_BYTES)"
    )
    before = counts()

    def chunks():  # no Content-Length: refused as the bytes pass the limit
        for _ in range(20):
            yield b"\0" * 8192

    r = small.post("/v1/datasets/parquet", params={"name": "t", "target": "y"},
                   content=chunks(), headers=PARQUET)  # fmt: skip
    assert r.status_code == 413, r.text
    assert "is over the limit of 65,536 bytes (DELTAFLOW_MAX_UPLOAD_BYTES)" in r.json()["message"]
    assert counts() == before


@pytest.mark.parametrize("media", ["npz", "parquet", "json"])
def test_too_many_values_is_refused_with_the_jobs_sentence(small, counts, media):
    x = np.ones((51, 2))  # 102 values, over 100
    if media == "npz":
        r = small.post("/v1/datasets/npz", params={"name": "t"}, headers=NPZ,
                       content=npz(compressed=True, x=x, y=np.zeros(51)))  # fmt: skip
    elif media == "parquet":
        body = parquet({"a": x[:, 0], "b": x[:, 1], "y": np.zeros(51)})
        r = small.post("/v1/datasets/parquet", params={"name": "t", "target": "y"},
                       content=body, headers=PARQUET)  # fmt: skip
    else:
        r = small.post("/v1/datasets", json={"name": "t", "x": x.tolist(), "y": [0] * 51})
    assert r.status_code == 422, r.text
    assert r.json()["message"].endswith(
        "102 data values (samples × features) is over the limit of 100 (DELTAFLOW_MAX_DATA_VALUES)"
    ), r.json()["message"]
    assert counts()["datasets"] == 0


def test_the_document_describes_each_binary_body(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path, media, params in (
        ("/v1/datasets/npz", "application/octet-stream", {"name"}),
        ("/v1/datasets/parquet", "application/vnd.apache.parquet", {"name", "target"}),
    ):
        operation = paths[path]["post"]
        assert set(operation["requestBody"]["content"]) == {media}
        assert {p["name"] for p in operation["parameters"]} == params
        assert {"200", "201", "413", "415", "422"} <= set(operation["responses"])
