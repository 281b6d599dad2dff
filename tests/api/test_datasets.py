"""The HTTP contract of /v1/datasets: JSON and CSV uploads stored once by content, list, read."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from api.datasets import store
from models.datasets import dataset_arrays

XOR = {"name": "xor", "x": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [0, 1, 1, 0]}

IRIS = """\
sepal_length,sepal_width,petal_length,petal_width,species
5.1,3.5,1.4,0.2,0
4.9,3.0,1.4,0.2,0
7.0,3.2,4.7,1.4,1
6.4,3.2,4.5,1.5,1
6.3,3.3,6.0,2.5,2
5.8,2.7,5.1,1.9,2
"""
IRIS_ROWS = [[float(v) for v in line.split(",")] for line in IRIS.splitlines()[1:]]


def _csv(client, text: str, **params):
    headers = {"content-type": "text/csv; charset=utf-8"}
    return client.post("/v1/datasets/csv", content=text.encode(), params=params, headers=headers)


def _arrays(sessions, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
    with sessions() as s:
        return dataset_arrays(s, uuid.UUID(dataset_id))


def test_json_upload_is_stored_once(client, counts):
    r = client.post("/v1/datasets", json=XOR)
    assert r.status_code == 201, r.text
    made = r.json()
    assert r.headers["location"] == f"/v1/datasets/{made['id']}"
    assert (made["name"], made["n_samples"], made["n_features"], made["n_outputs"]) == (
        "xor", 4, 2, 1
    )  # fmt: skip
    assert len(made["sha256"]) == 64
    assert set(made) == {
        "id",
        "name",
        "sha256",
        "n_samples",
        "n_features",
        "n_outputs",
        "created_at",
    }

    # The same content — also with y as a column, under another name — is the same data set.
    again = client.post("/v1/datasets", json=XOR | {"name": "other", "y": [[0], [1], [1], [0]]})
    assert again.status_code == 200
    assert "location" not in again.headers
    assert again.json() == made
    assert counts()["datasets"] == 1
    assert client.get(f"/v1/datasets/{made['id']}").json() == made


def test_json_upload_stores_the_arrays(client, sessions):
    body = {"name": "two", "x": [[0.1, -2.5], [3e-3, 4.0]], "y": [[1, 0, 0.5], [0, 1, 0.25]]}
    made = client.post("/v1/datasets", json=body).json()
    assert (made["n_features"], made["n_outputs"]) == (2, 3)
    x, y = _arrays(sessions, made["id"])
    assert x.tolist() == body["x"]
    assert y.tolist() == body["y"]


def test_csv_upload(client, sessions):
    r = _csv(client, IRIS, name="iris", target="species")
    assert r.status_code == 201, r.text
    made = r.json()
    assert r.headers["location"] == f"/v1/datasets/{made['id']}"
    assert (made["name"], made["n_samples"], made["n_features"], made["n_outputs"]) == (
        "iris", 6, 4, 1
    )  # fmt: skip
    x, y = _arrays(sessions, made["id"])
    table = np.array(IRIS_ROWS)
    np.testing.assert_array_equal(x, table[:, :4])
    np.testing.assert_array_equal(y, table[:, 4])
    # The same numbers as JSON are the same data set.
    same = {"name": "iris", "x": table[:, :4].tolist(), "y": table[:, 4].tolist()}
    assert client.post("/v1/datasets", json=same).json()["id"] == made["id"]


def test_csv_with_two_targets_crlf_and_a_byte_order_mark(client, sessions):
    text = "\ufeff" + IRIS.replace("\n", "\r\n") + "\r\n"
    r = _csv(client, text, name="iris", target=["petal_width", "species"])
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["n_features"], made["n_outputs"]) == (3, 2)
    x, y = _arrays(sessions, made["id"])
    table = np.array(IRIS_ROWS)
    np.testing.assert_array_equal(x, table[:, :3])
    np.testing.assert_array_equal(y, table[:, [3, 4]])


def test_jobs_share_an_uploaded_data_set(client, counts):
    dataset = _csv(client, IRIS, name="iris", target="species").json()
    job = {"network": {"layers": [4, 3, 1]}, "epochs": 5, "dataset": {"id": dataset["id"]}}
    first = client.post("/v1/jobs", json=job | {"name": "a"})
    second = client.post("/v1/jobs", json=job | {"name": "b"})
    assert first.status_code == second.status_code == 201, first.text
    assert first.json()["dataset_id"] == second.json()["dataset_id"] == dataset["id"]
    assert counts()["datasets"] == 1
    assert counts()["jobs"] == 2
    wrong = client.post("/v1/jobs", json=job | {"network": {"layers": [2, 3, 1]}})
    assert wrong.status_code == 422
    assert "x must have shape (n_samples, 2)" in wrong.json()["message"]


JSON = "application/json"
CSV = "text/csv"
CSV_TARGET = {"name": "t", "target": "species"}

BAD_UPLOADS = [
    # (content type, body, query, status, phrase the message must hold)
    (JSON, {"name": "r", "x": [[0, 1], [1]], "y": [0, 1]}, {}, 422, "x: must be rectangular"),
    (JSON, '{"name": "n", "x": [[NaN]], "y": [0]}', {}, 422, "x.0.0: Input should be a finite"),
    (JSON, '{"name": "n", "x": [[1]], "y": [Infinity]}', {}, 422, "Input should be a finite"),
    (JSON, {"name": "e", "x": [], "y": [1]}, {}, 422, "x: List should have at least 1 item"),
    (JSON, {"name": "e", "x": [[]], "y": [1]}, {}, 422, "x.0: List should have at least 1 item"),
    (JSON, {"name": "m", "x": [[1], [2]], "y": [1, 2, 3]}, {}, 422, "one row per sample of x (2)"),
    (JSON, {"name": "r", "x": [[1], [2]], "y": [[1, 2], [3]]}, {}, 422, "y: must be rectangular"),
    (JSON, XOR | {"colour": "red"}, {}, 422, "colour: Extra inputs are not permitted"),
    (JSON, {"x": [[1]], "y": [1]}, {}, 422, "name: Field required"),
    (JSON, "", {}, 422, "body: is not valid JSON"),
    (JSON, "[1, 2]", {}, 422, "body: Input should be a valid dictionary"),
    (JSON, XOR, {"target": "y"}, 422, "query.target: is a parameter of POST /v1/datasets/csv"),
    (CSV, "a,b,species\n1,2,0\n3,abc,1\n", CSV_TARGET, 422, "line 3, column 'b': 'abc' is not"),
    (CSV, "a,b,species\n1,2,0\n3,,1\n", CSV_TARGET, 422, "line 3, column 'b': '' is not a number"),
    (CSV, "a,b,species\n1,inf,0\n", CSV_TARGET, 422, "'inf' is not a finite number"),
    (CSV, "a,b,species\n1,2,0\n3,1\n", CSV_TARGET, 422, "line 3 has 2 fields but the header has 3"),
    (
        CSV,
        "a,b,species\n1,2,0\n",
        {"name": "t", "target": "label"},
        422,
        "no column 'label'; its columns are 'a', 'b', 'species'",
    ),
    (CSV, "a,b,species\n", CSV_TARGET, 422, "header but no data lines"),
    (CSV, 'a,b,species\n1,"2,0\n', CSV_TARGET, 422, "line 2: unexpected end of data"),
    (CSV, "", CSV_TARGET, 422, "the CSV is empty"),
    (CSV, "a,b,species\n1,2,0\n", {"name": "t"}, 422, "query.target: Field required"),
    (CSV, "a,b,species\n1,2,0\n", {"target": "species"}, 422, "query.name: Field required"),
    (CSV, "a,a,species\n1,2,0\n", CSV_TARGET, 422, "names column 'a' twice"),
    (CSV, "a,species\n1,0\n", {"name": "t", "target": ["a", "species"]}, 422, "every column is"),
    (CSV, b"a,species\n\xff,0\n", CSV_TARGET, 422, "body: is not UTF-8 text"),
    ("text/plain", "a,species\n1,0\n", CSV_TARGET, 415, "not with content type 'text/plain'"),
    (None, "", {}, 415, "not with no content type"),
]
# Each media type has its own operation (and so its own documented body and parameters).
UPLOAD_PATHS = {CSV: "/v1/datasets/csv", "text/plain": "/v1/datasets/csv"}


@pytest.mark.parametrize(("media", "body", "params", "status", "says"), BAD_UPLOADS)
def test_bad_uploads_say_why_and_store_nothing(shared, media, body, params, status, says):
    before = shared.counts()
    headers = {"content-type": media} if media else {}
    if isinstance(body, dict):
        r = shared.client.post("/v1/datasets", json=body, params=params)
    else:
        content = body.encode() if isinstance(body, str) else body
        path = UPLOAD_PATHS.get(media, "/v1/datasets")
        r = shared.client.post(path, content=content, params=params, headers=headers)
    assert r.status_code == status, r.text
    assert says in r.json()["message"], r.json()["message"]
    assert shared.counts() == before


def test_list_newest_first_by_cursor(client):
    ids = [
        client.post("/v1/datasets", json=XOR | {"y": [i, 1, 1, 0]}).json()["id"] for i in range(3)
    ]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = client.get("/v1/datasets", params=params).json()
        assert len(body["items"]) <= 2
        seen += [d["id"] for d in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert pages == 2
    assert client.get("/v1/datasets", params={"cursor": "bm9wZQ"}).status_code == 422
    assert client.get("/v1/datasets", params={"limit": 0}).status_code == 422


def test_unknown_malformed_and_other_owners_ids(client, sessions):
    with sessions.begin() as s:
        theirs = store(s, "someone-else", "theirs", np.ones((2, 1)), np.zeros(2))
    r = client.get(f"/v1/datasets/{theirs.id}")
    assert r.status_code == 404
    assert "not found" in r.json()["message"]
    assert client.get("/v1/datasets").json() == {"items": [], "next_cursor": None}
    assert client.get(f"/v1/datasets/{uuid.uuid4()}").status_code == 404
    r = client.get("/v1/datasets/not-a-uuid")
    assert r.status_code == 422
    assert "dataset_id" in r.json()["message"]


def test_openapi_documents_each_upload_as_its_own_operation(client):
    paths = client.get("/openapi.json").json()["paths"]
    upload, csv = paths["/v1/datasets"]["post"], paths["/v1/datasets/csv"]["post"]
    assert set(upload["requestBody"]["content"]) == {"application/json"}
    schema = upload["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"name", "x", "y"}
    assert "parameters" not in upload  # name and target are the CSV operation's
    assert set(csv["requestBody"]["content"]) == {"text/csv"}
    assert {p["name"]: p["required"] for p in csv["parameters"]} == {"name": True, "target": True}
    for operation in (upload, csv):
        assert {"200", "201", "415", "422"} <= set(operation["responses"])


def test_each_upload_operation_names_the_one_for_another_media_type(client):
    r = client.post("/v1/datasets", content=b"a,y\n1,0\n", headers={"content-type": "text/csv"})
    assert r.status_code == 415
    assert "POST /v1/datasets/csv reads text/csv" in r.json()["message"]
    r = client.post("/v1/datasets/csv", json=XOR, params={"name": "t", "target": "y"})
    assert r.status_code == 415
    assert "POST /v1/datasets reads application/json" in r.json()["message"]
