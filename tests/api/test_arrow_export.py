"""Epochs as Apache Arrow and Parquet: GET /v1/jobs/{id}/epochs with the Arrow media type,
…/epochs.parquet, and the many-job export GET /v1/epochs — each value for value the JSON
columns answer, on both set-ups."""

from __future__ import annotations

import io
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import update

from models.tables import PER_LAYER_FIELDS, Job
from tests.api.setups import SETUPS, setup
from tests.factories import XOR_JOB
from worker.runner import Runner

ARROW = {"Accept": "application/vnd.apache.arrow.stream"}
DEEP = XOR_JOB | {"name": "deep", "network": {"layers": [2, 3, 3, 1]}, "epochs": 120}


@pytest.fixture(params=SETUPS)
def settings(request, databases, redis_indexes, tmp_path):
    with setup(request.param, databases, redis_indexes, tmp_path) as s:
        # A checkpoint at every flush, so a fork has one to start from.
        yield s.model_copy(update={"checkpoint_interval": 0.0})


def _columns(client, job_id: str, **params) -> dict[str, list]:
    params = {"format": "columns", "limit": 100_000} | params
    r = client.get(f"/v1/jobs/{job_id}/epochs", params=params)
    assert r.status_code == 200, r.text
    return r.json()["columns"]


def _arrow(client, path: str, **params) -> pa.Table:
    r = client.get(path, params=params, headers=ARROW)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == ARROW["Accept"]
    return pa.ipc.open_stream(r.content).read_all()


def _as_json(table: pa.Table, n_layers: int) -> dict[str, list]:
    """The table in the JSON columns shape: name_1 … name_L folded back into one list a row."""
    out: dict[str, list] = {}
    for name in table.column_names:
        base, _, layer = name.rpartition("_")
        if base in PER_LAYER_FIELDS and layer.isdigit():
            rows = out.setdefault(base, [[] for _ in range(table.num_rows)])
            for row, value in zip(rows, table[name].to_pylist(), strict=True):
                row.append(value)
        elif name != "job_id":
            out[name] = table[name].to_pylist()
    assert all(len(r) == n_layers for k, v in out.items() if k in PER_LAYER_FIELDS for r in v)
    return out


@pytest.mark.parametrize(
    "params",
    [{}, {"fields": "loss,grad_norm_weights"}, {"start": 10, "end": 40}, {"points": 20}],
    ids=["all", "subset", "range", "downsample"],
)
def test_arrow_equals_the_json_columns(client, trained, params):
    job = trained()
    table = _arrow(client, f"/v1/jobs/{job['id']}/epochs", **params)
    assert table.schema.field("epoch").type == pa.int64()
    assert table.schema.field("loss").type == pa.float64()
    assert _as_json(table, 2) == _columns(client, job["id"], **params)


def test_a_downsample_says_how_many_epochs_it_thinned(client, trained):
    job = trained()
    r = client.get(f"/v1/jobs/{job['id']}/epochs", params={"points": 20}, headers=ARROW)
    assert r.headers["X-Downsampled-Of"] == "250"
    whole = client.get(f"/v1/jobs/{job['id']}/epochs", headers=ARROW)
    assert "X-Downsampled-Of" not in whole.headers


def test_a_cursor_is_refused_with_arrow(client, trained):
    job = trained()
    r = client.get(f"/v1/jobs/{job['id']}/epochs", params={"cursor": "MQ"}, headers=ARROW)
    assert r.status_code == 422
    assert "cursor" in r.json()["message"]


def test_a_fork_own_and_not_own(client, sessions, settings, trained):
    parent = trained()
    fork = client.post(f"/v1/jobs/{parent['id']}/fork", json={"epoch": 100})
    assert fork.status_code == 201, fork.text
    assert Runner(sessions, settings).run(uuid.UUID(fork.json()["id"])) == "succeeded"
    path = f"/v1/jobs/{fork.json()['id']}/epochs"
    for own in (False, True):
        table = _arrow(client, path, own=str(own).lower())
        assert _as_json(table, 2) == _columns(client, fork.json()["id"], own=str(own).lower())
        assert table["epoch"][0].as_py() == (101 if own else 1)


@pytest.mark.parametrize("params", [{}, {"fields": "loss", "start": 5, "end": 9}, {"points": 10}])
def test_parquet_equals_arrow(client, trained, params):
    job = trained()
    r = client.get(f"/v1/jobs/{job['id']}/epochs.parquet", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    disposition = r.headers["content-disposition"]
    assert disposition == f'attachment; filename="job-{job["id"]}-epochs.parquet"'
    table = pq.read_table(io.BytesIO(r.content))
    assert table.equals(_arrow(client, f"/v1/jobs/{job['id']}/epochs", **params))


def _export(client, **params) -> pa.Table:
    return _arrow(client, "/v1/epochs", **params)


def _single(client, job_id: str, **params) -> pa.Table:
    return _arrow(client, f"/v1/jobs/{job_id}/epochs", **params)


def _check_union(client, table: pa.Table, job_ids: list[str], **params) -> None:
    """The export is each job's single-job export in turn, led by its job_id."""
    assert table.schema.field("job_id").type == pa.dictionary(pa.int32(), pa.string())
    ids = table["job_id"].to_pylist()
    assert list(dict.fromkeys(ids)) == job_ids
    for job_id in job_ids:
        mine = table.filter(pa.compute.equal(table["job_id"].cast(pa.string()), job_id))
        assert mine.drop_columns(["job_id"]).equals(_single(client, job_id, **params)), job_id


def test_export_by_ids_with_a_range_and_fields(client, trained):
    jobs = [trained()["id"] for _ in range(3)]
    params = {"fields": "loss,grad_norm_biases", "start": 3, "end": 60}
    table = _export(client, job_id=jobs[:2], **params)
    _check_union(client, table, jobs[:2], **params)
    assert table.num_rows == 2 * 58
    frame = table.to_pandas()
    assert list(frame.columns) == ["job_id", "epoch", "loss", "grad_norm_biases_1",
                                   "grad_norm_biases_2"]  # fmt: skip


def test_export_by_batch(client, sessions, settings):
    r = client.post("/v1/batches", json={"name": "b", "base": XOR_JOB, "grid": {"seed": [1, 2]}})
    assert r.status_code == 201, r.text
    ids = [str(i) for i in r.json()["job_ids"]]
    for job_id in ids:
        assert Runner(sessions, settings).run(uuid.UUID(job_id)) == "succeeded"
    table = _export(client, batch=r.json()["id"])
    assert set(table["job_id"].to_pylist()) == set(ids)
    _check_union(client, table, list(dict.fromkeys(table["job_id"].to_pylist())))


def test_export_by_filter_pads_shallower_jobs(client, trained):
    shallow = trained(XOR_JOB | {"tags": {"team": "a"}})["id"]
    deep = trained(DEEP | {"tags": {"team": "a"}})["id"]
    trained(XOR_JOB | {"tags": {"team": "b"}})
    table = _export(client, tag="team:a", status="succeeded")
    assert list(dict.fromkeys(table["job_id"].to_pylist())) == [shallow, deep]
    assert "grad_norm_weights_3" in table.column_names
    for job_id, n_layers in ((shallow, 2), (deep, 3)):
        mine = table.filter(pa.compute.equal(table["job_id"].cast(pa.string()), job_id))
        as_json = _as_json(
            mine.select(
                [
                    "epoch",
                    "loss",
                    *(f"grad_norm_weights_{layer}" for layer in range(1, n_layers + 1)),
                ]
            ),
            n_layers,
        )
        assert as_json == _columns(client, job_id, fields="loss,grad_norm_weights")  # fmt: skip
    padding = table.filter(pa.compute.equal(table["job_id"].cast(pa.string()), shallow))
    assert padding["grad_norm_weights_3"].null_count == padding.num_rows


def test_without_the_arrow_accept_the_export_is_octet_stream(client, trained):
    job = trained()["id"]
    r = client.get("/v1/epochs", params={"job_id": job})
    assert r.headers["content-type"] == "application/octet-stream"
    assert pa.ipc.open_stream(r.content).read_all().num_rows == 250


def test_another_owners_job_is_not_found(client, sessions, trained):
    mine, theirs = trained()["id"], trained()["id"]
    with sessions.begin() as s:
        s.execute(update(Job).where(Job.id == uuid.UUID(theirs)).values(owner="someone-else"))
    for path, params in [("/v1/epochs", {"job_id": [mine, theirs]}),
                         (f"/v1/jobs/{theirs}/epochs.parquet", {})]:  # fmt: skip
        r = client.get(path, params=params, headers=ARROW)
        assert r.status_code == 404, r.text
        assert theirs in r.json()["message"]
    assert "job_id" in client.get("/v1/epochs", params={"job_id": theirs}).json()["message"]
    assert set(_export(client, status="succeeded")["job_id"].to_pylist()) == {mine}


def test_bad_parameters_name_the_field(client, trained):
    job = trained()["id"]
    for params, status, says in [
        ({}, 422, "job_id"),
        ({"job_id": [str(uuid.uuid4()) for _ in range(1001)]}, 422, "job_id"),
        ({"job_id": "nope"}, 422, "job_id"),
        ({"job_id": str(uuid.uuid4())}, 404, "job_id"),
        ({"batch": str(uuid.uuid4())}, 404, "batch"),
        ({"job_id": job, "fields": "loss,weights"}, 422, "fields"),
        ({"status": "done"}, 422, "status"),
        ({"tag": "no-colon"}, 422, "tag"),
        ({"job_id": job, "start": -1}, 422, "start"),
    ]:
        r = client.get("/v1/epochs", params=params, headers=ARROW)
        assert r.status_code == status, (params, r.text)
        assert says in r.json()["message"], r.json()["message"]
    r = client.get(f"/v1/jobs/{job}/epochs.parquet", params={"points": 2})
    assert r.status_code == 422 and "points" in r.json()["message"]
