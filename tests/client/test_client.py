"""deltaflow.Client against a real service (api, worker, reaper as processes) on each set-up:
every call of the README's tour, each answer compared with what the HTTP API itself says."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import deltaflow
from tests.factories import HTTP, service

pytestmark = pytest.mark.xdist_group("client")

X = np.random.default_rng(1).uniform(-1, 1, size=(120, 2)).astype(np.float32)
Y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
BODY = {
    "name": "client",
    "network": {"layers": [2, 6, 2], "activation": "tanh", "output_activation": "softmax"},
    "loss": "cross_entropy",
    "optimizer": {"name": "adam", "learning_rate": 0.05},
    "epochs": 40,
    "batch_size": 16,
    "snapshot_every": 10,
    "validation_split": 0.25,
}


@pytest.fixture(scope="module", params=["embedded", "postgresql+redis"])
def url(request, databases, redis_indexes, tmp_path_factory):
    with service(request.param, databases, redis_indexes, tmp_path_factory.mktemp("c")) as s:
        yield s.url


@pytest.fixture(scope="module")
def client(url):
    with deltaflow.Client(url) as c:
        yield c


@pytest.fixture(scope="module")
def job(client):
    data = client.datasets.upload(X, Y, name="quadrants")
    return client.jobs.submit(BODY, dataset=data, tags={"suite": "client"}).wait(progress=False)


def _columns(url: str, job_id: str) -> dict:
    params = {"format": "columns", "limit": 100_000}
    return HTTP.get(f"{url}/v1/jobs/{job_id}/epochs", params=params).json()["columns"]


def test_upload_keeps_the_values_and_dtype_free_content_address(client, url):
    data = client.datasets.upload(X, Y, name="quadrants")
    as_json = {"name": "q", "x": X.astype(np.float64).tolist(), "y": Y.tolist()}
    again = HTTP.post(f"{url}/v1/datasets", json=as_json)
    assert again.status_code == 200  # stored already: the same content, sent as .npz
    assert again.json()["id"] == data["id"]
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "label": Y})
    assert client.datasets.upload(frame, name="f", target="label")["id"] == data["id"]
    polars_frame = pl.DataFrame({"a": X[:, 0], "b": X[:, 1], "label": Y})
    assert client.datasets.upload(polars_frame, name="p", target="label")["id"] == data["id"]
    assert data["id"] in {d["id"] for d in client.datasets.list()}


def test_history_in_every_form_equals_the_json_columns(job, url):
    assert job.status == "succeeded"
    expected = _columns(url, job.id)
    frame = job.history()
    assert isinstance(frame, pd.DataFrame)
    assert frame["epoch"].tolist() == expected["epoch"] == list(range(1, 41))
    for name in ("loss", "val_loss", "accuracy", "learning_rate"):
        assert frame[name].tolist() == expected[name], name
    per_layer = np.array(expected["grad_norm_weights"])
    assert frame[["grad_norm_weights_1", "grad_norm_weights_2"]].to_numpy().tolist() == (
        per_layer.tolist()
    )
    table = job.history(fields=["loss"], as_="arrow")
    assert isinstance(table, pa.Table)
    assert table.column_names == ["epoch", "loss"]
    assert job.history(fields="loss", as_="polars")["loss"].to_list() == expected["loss"]
    arrays = job.history(fields="loss", start=5, end=9, as_="numpy")
    assert arrays["epoch"].tolist() == [5, 6, 7, 8, 9]
    assert arrays["loss"].tolist() == expected["loss"][4:9]
    thinned = job.history(fields="loss", points=8)
    assert 4 <= len(thinned) <= 8
    assert {1, 40} <= set(thinned["epoch"])


def test_snapshot_trajectory_predict_and_onnx(job, url):
    weights = job.snapshot(10)
    assert {k: v.shape for k, v in weights.items()} == {
        "W1": (6, 2), "b1": (6,), "W2": (2, 6), "b2": (2,)
    }  # fmt: skip
    stored = HTTP.get(f"{url}/v1/jobs/{job.id}/snapshots/10").json()
    assert weights["W1"].tolist() == stored["layers"][0]["weights"]
    assert weights["b2"].tolist() == stored["layers"][1]["biases"]
    path = job.trajectory("w^1_{0,1}")
    assert path.name == "w^1_{0,1}"
    assert path.index.name == "epoch"
    assert path.loc[10] == weights["W1"][0, 1]
    assert job.trajectory("b^2_{1}").loc[10] == weights["b2"][1]
    with pytest.raises(ValueError, match="w\\^l_\\{k,j\\}"):
        job.trajectory("W[1][0,1]")
    outputs = job.predict(X[:4], epoch=10)
    answer = HTTP.post(f"{url}/v1/jobs/{job.id}/predict", json={"x": X[:4].tolist(), "epoch": 10})
    assert outputs.tolist() == answer.json()["outputs"]
    model = onnx.load_model_from_string(job.to_onnx(10))
    onnx.checker.check_model(model)


def test_fork_cancel_and_list_every_page(client, job):
    child = job.fork(20, **{"optimizer.learning_rate": 0.01}, name="child").wait(progress=False)
    assert child.info["parent_id"] == job.id
    assert child.info["forked_at_epoch"] == 20
    assert (
        child.history(fields="loss")["loss"].tolist()[:20]
        == (job.history(fields="loss")["loss"].tolist()[:20])
    )
    long = client.jobs.submit(BODY | {"epochs": 100_000, "name": "long"}, dataset={"id":
                              job.info["dataset_id"]}, tags={"suite": "client"})  # fmt: skip
    assert long.cancel().info["cancel_requested_at"] is not None
    assert long.wait(timeout=60, progress=False).status == "cancelled"
    listed = list(client.jobs.list(tag={"suite": "client"}, limit=1))  # one job a page
    assert {j.id for j in listed} == {job.id, child.id, long.id}  # a fork keeps the tags
    assert [j.id for j in client.jobs.list(status="cancelled", tag="suite:client")] == [long.id]


def test_batch_leaderboard_and_many_jobs_in_one_frame(client, job):
    grid = {"optimizer.learning_rate": [0.01, 0.05, 0.1]}
    base = BODY | {"epochs": 15, "dataset": {"id": job.info["dataset_id"]}}
    batch = client.batches.create(base, name="lr", grid=grid).wait(progress_bar=False)
    board = batch.leaderboard()
    assert sorted(board["optimizer.learning_rate"]) == [0.01, 0.05, 0.1]
    assert board["best_loss"].is_monotonic_increasing
    frame = client.history(batch=batch, fields=["loss"])
    assert sorted(frame.columns) == ["epoch", "job_id", "loss"]
    assert frame.groupby("job_id", observed=True).size().tolist() == [15, 15, 15]
    assert set(frame["job_id"].astype(str)) == {str(j) for j in board["job_id"]}
    by_id = client.history([job, job.id], fields="loss")  # a Job or its id
    assert by_id["loss"].tolist() == job.history(fields="loss")["loss"].tolist()


def test_a_thousand_job_ids_fit_in_one_request(client, job):
    """GET /v1/epochs takes up to 1,000 repeated job_id: the 44 kB URL reaches the API whole
    (no 400 or 414 from the server in front of it) and is answered for those ids."""
    missing = [f"00000000-0000-0000-0000-{i:012d}" for i in range(999)]
    with pytest.raises(deltaflow.NotFound, match=f"job_id: job {missing[0]} not found"):
        client.history([job, *missing], fields="loss")


def test_errors_carry_the_apis_sentence(client, url):
    with pytest.raises(deltaflow.APIError) as caught:
        client.jobs.submit(BODY | {"epochs": 0}, dataset={"builtin": "xor"})
    assert caught.value.status == 422
    assert "epochs" in str(caught.value)
    assert "greater than or equal to 1" in str(caught.value)
    with pytest.raises(deltaflow.NotFound, match="not found"):
        client.jobs.get("00000000-0000-0000-0000-000000000000")
    words = pd.DataFrame({"a": ["p", "q"], "label": [0, 1]})
    with pytest.raises(deltaflow.APIError, match="must hold integers or floating-point"):
        client.datasets.upload(words, name="words", target="label")


def test_no_service_and_no_answer_name_the_url():
    with pytest.raises(
        deltaflow.ServiceUnavailable, match=r"cannot reach .* http://127\.0\.0\.1:9"
    ):
        deltaflow.Client("http://127.0.0.1:9").jobs.get("0" * 36)
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        quiet = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(
            deltaflow.ServiceUnavailable, match=f"{re.escape(quiet)} did not answer"
        ):
            deltaflow.Client(quiet, timeout=0.5).jobs.get("0" * 36)


def test_the_defaults_come_from_the_environment(url, monkeypatch):
    monkeypatch.setenv("DELTAFLOW_URL", url)
    monkeypatch.setenv("DELTAFLOW_KEY", "not a key")
    with pytest.raises(deltaflow.AuthenticationError, match="DELTAFLOW_KEY"):
        deltaflow.Client()
    monkeypatch.delenv("DELTAFLOW_KEY")
    assert deltaflow.Client().url == url


def test_the_example_script_runs(url, tmp_path):
    example = Path(__file__).parents[2] / "examples" / "quickstart.py"
    env = os.environ | {"DELTAFLOW_URL": url, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, str(example)], env=env, capture_output=True,
                          text=True, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "400 samples × 2 features" in done.stdout
    assert "epochs of 4 jobs in one DataFrame" in done.stdout
    assert list(tmp_path.glob("deltaflow-*.onnx"))


def test_wait_draws_a_progress_bar_of_epochs(client, job, capsys):
    again = client.jobs.submit(BODY | {"name": "bar"}, dataset={"id": job.info["dataset_id"]})
    again.wait(progress=True, poll=0.05)
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert bar.startswith(f"job {again.id[:8]}: 100%")
    assert "40/40" in bar
    assert "succeeded, loss" in bar


def test_compare_and_health(client, job):
    frame = client.compare([job], field="val_loss", at=20)
    history = job.history(fields="val_loss")
    (row,) = frame.to_dict("records")
    assert row["job_id"] == job.id and row["status"] == "succeeded"
    assert row["last"] == history["val_loss"].iloc[-1] and row["at"] == history["val_loss"].iloc[19]
    assert row["min"] == history["val_loss"].min()
    assert job.refresh().health == []  # tanh units, a modest step: no rule fired
    figures = job.history(fields=["dead_fraction", "saturated_fraction", "nonfinite"])
    assert figures.filter(like="dead_fraction").isna().all().all()  # tanh: no dead units
    assert (figures["nonfinite"] == 0).all()
