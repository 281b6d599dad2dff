"""POST /v1/jobs/{id}/fork and the lineage: a fork continues its parent's exact state, its
history serves the parent's prefix (stored once) then its own, on both set-ups."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
from sqlalchemy import func, select

from models.tables import Checkpoint
from tests.api.setups import SETUPS, setup
from tests.api.test_job_actions import Listener, _listen
from tests.api.test_job_actions import _epochs as streamed
from worker.runner import Runner

MOONS_JOB = {
    "name": "moons",
    "network": {"layers": [2, 8, 2], "activation": "tanh", "output_activation": "softmax"},
    "loss": "cross_entropy",
    "optimizer": {"name": "adam", "learning_rate": 0.02},
    "epochs": 60,
    "batch_size": 16,
    "validation_split": 0.2,
    "early_stopping": {"patience": 30},
    "snapshot_every": 5,
    "seed": 4,
    "dataset": {"builtin": "moons", "n": 200},
}


@pytest.fixture(params=SETUPS)
def settings(request, databases, redis_indexes, tmp_path):
    with setup(request.param, databases, redis_indexes, tmp_path) as s:
        # Several checkpoints per job, so a fork replays from one that is not its epoch.
        yield s.model_copy(update={"checkpoint_interval": 0.0, "flush_interval": 0.001})


def _run(client, sessions, settings, job: dict) -> dict:
    assert Runner(sessions, settings).run(uuid.UUID(job["id"])) == "succeeded"
    return client.get(f"/v1/jobs/{job['id']}").json()


def _epochs(client, job_id, **params) -> dict:
    return client.get(f"/v1/jobs/{job_id}/epochs", params={"format": "columns", "limit": 100_000,
                                                           **params}).json()["columns"]  # fmt: skip


def test_a_fork_without_overrides_repeats_its_parent_and_shares_its_prefix(
    client, sessions, settings
):
    parent = _run(client, sessions, settings, client.post("/v1/jobs", json=MOONS_JOB).json())
    with sessions() as s:  # a checkpoint after each flush, every one kept
        kept = s.scalar(select(func.count()).where(Checkpoint.job_id == uuid.UUID(parent["id"])))
    assert kept > 2
    response = client.post(f"/v1/jobs/{parent['id']}/fork", json={"epoch": 23})
    assert response.status_code == 201, response.text
    fork = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{fork['id']}"
    assert (fork["parent_id"], fork["forked_at_epoch"], fork["root_id"]) == (
        parent["id"], 23, parent["id"],
    )  # fmt: skip
    assert fork["status"] == "queued" and fork["epochs_done"] == 23
    fork = _run(client, sessions, settings, fork)
    assert fork["epochs_done"] == parent["epochs_done"]
    assert fork["final_loss"] == parent["final_loss"]

    theirs, mine = _epochs(client, parent["id"]), _epochs(client, fork["id"])
    assert mine["epoch"] == theirs["epoch"]
    assert mine["loss"] == theirs["loss"] and mine["val_loss"] == theirs["val_loss"]
    own = _epochs(client, fork["id"], own="true")
    assert own["epoch"][0] == 24
    for epoch in (0, 20, 25, parent["epochs_done"]):
        a = client.get(f"/v1/jobs/{parent['id']}/snapshots/{epoch}").json()
        b = client.get(f"/v1/jobs/{fork['id']}/snapshots/{epoch}").json()
        assert a["layers"] == b["layers"], epoch
    listed = client.get(f"/v1/jobs/{fork['id']}/snapshots").json()["items"]
    assert [s["epoch"] for s in listed] == [
        s["epoch"] for s in client.get(f"/v1/jobs/{parent['id']}/snapshots").json()["items"]
    ]
    x = {"x": [[0.5, -0.2], [1.0, 0.3]]}
    for epoch in (20, parent["epochs_done"]):  # the parent's snapshot, then the fork's own
        a = client.post(f"/v1/jobs/{parent['id']}/predict", json=x | {"epoch": epoch}).json()
        assert client.post(f"/v1/jobs/{fork['id']}/predict", json=x | {"epoch": epoch}).json() == a
    assert streamed(_listen(client, fork["id"])) == list(range(1, fork["epochs_done"] + 1))
    before_fork = client.post(f"/v1/jobs/{fork['id']}/predict?own=true", json=x | {"epoch": 20})
    assert before_fork.status_code == 404 and "nearest are at epoch 25" in before_fork.text
    own_events = Listener(client, f"/v1/jobs/{fork['id']}/events?own=true")
    own_events.start()
    assert streamed(own_events.finish()) == list(range(24, fork["epochs_done"] + 1))
    params = {"layer": 1, "param": "weight", "k": 3, "j": 1}
    a = client.get(f"/v1/jobs/{parent['id']}/trajectory", params=params).json()
    b = client.get(f"/v1/jobs/{fork['id']}/trajectory", params=params).json()
    assert (a["epochs"], a["values"]) == (b["epochs"], b["values"])
    mine_only = client.get(f"/v1/jobs/{fork['id']}/trajectory", params=params | {"own": "true"})
    assert mine_only.json()["epochs"] == [e for e in a["epochs"] if e > 23]


def test_an_override_takes_effect_from_the_next_epoch(client, sessions, settings):
    parent = _run(client, sessions, settings, client.post("/v1/jobs", json=MOONS_JOB).json())
    body = {"epoch": 10, "overrides": {"optimizer.learning_rate": 0.005, "epochs": 80}}
    fork = client.post(f"/v1/jobs/{parent['id']}/fork", json=body).json()
    assert fork["epochs_total"] == 80 and fork["spec"]["optimizer"]["learning_rate"] == 0.005
    fork = _run(client, sessions, settings, fork)
    rates = _epochs(client, fork["id"], fields="learning_rate")
    assert rates["learning_rate"][:10] == [0.02] * 10
    assert set(rates["learning_rate"][10:]) == {0.005}


def test_train_longer_is_a_fork_at_the_last_epoch(client, sessions, settings):
    body = MOONS_JOB | {"epochs": 20, "early_stopping": None}
    parent = _run(client, sessions, settings, client.post("/v1/jobs", json=body).json())
    fork = client.post(f"/v1/jobs/{parent['id']}/fork", json={"overrides": {"epochs": 30}})
    assert fork.json()["forked_at_epoch"] == 20
    fork = _run(client, sessions, settings, fork.json())
    assert fork["epochs_done"] == 30
    # the same job trained 30 epochs straight: bit-identical
    straight = _run(client, sessions, settings,
                    client.post("/v1/jobs", json=body | {"epochs": 30}).json())  # fmt: skip
    assert _epochs(client, fork["id"])["loss"] == _epochs(client, straight["id"])["loss"]
    a = client.get(f"/v1/jobs/{fork['id']}/snapshots/30/weights.npz").content
    b = client.get(f"/v1/jobs/{straight['id']}/snapshots/30/weights.npz").content
    za, zb = (np.load(io.BytesIO(z)) for z in (a, b))
    assert all(za[k].tobytes() == zb[k].tobytes() for k in zb.files)


def test_a_fork_of_a_fork_reads_through_both(client, sessions, settings):
    root = _run(client, sessions, settings, client.post("/v1/jobs", json=MOONS_JOB).json())
    child = client.post(f"/v1/jobs/{root['id']}/fork", json={
        "epoch": 30, "overrides": {"optimizer.learning_rate": 0.01}}).json()  # fmt: skip
    child = _run(client, sessions, settings, child)
    # before the child's fork epoch, the child's history — and state — is the root's; a fork
    # of it there continues that state with the child's spec
    early = client.post(f"/v1/jobs/{child['id']}/fork", json={"epoch": 12}).json()
    late = client.post(f"/v1/jobs/{child['id']}/fork", json={"epoch": 40}).json()
    assert early["root_id"] == late["root_id"] == root["id"]
    early, late = (_run(client, sessions, settings, j) for j in (early, late))
    mine = _epochs(client, early["id"])
    assert mine["loss"][:12] == _epochs(client, root["id"])["loss"][:12]
    assert mine["learning_rate"][11:13] == [0.02, 0.01]
    assert _epochs(client, late["id"])["loss"] == _epochs(client, child["id"])["loss"]

    lineage = client.get(f"/v1/jobs/{late['id']}/lineage").json()
    assert [a["id"] for a in lineage["ancestors"]] == [child["id"], root["id"]]
    below = client.get(f"/v1/jobs/{root['id']}/lineage").json()["descendants"]
    assert below[0]["id"] == child["id"]
    assert {d["id"] for d in below} == {child["id"], early["id"], late["id"]}
    kids = client.get("/v1/jobs", params={"parent_id": child["id"]}).json()["items"]
    assert {j["id"] for j in kids} == {early["id"], late["id"]}
    tree = client.get("/v1/jobs", params={"root_id": root["id"]}).json()["items"]
    assert len(tree) == 4

    refused = client.delete(f"/v1/jobs/{root['id']}")
    assert refused.status_code == 409 and child["id"] in refused.json()["detail"]
    for job in (early, late, child, root):  # leaves first, then their parents
        assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"epoch": 500}, "epoch", "nearest forkable epoch is"),
        ({"overrides": {"network.layers": [2, 9, 2]}}, "network.layers", "cannot change network"),
        ({"overrides": {"loss": "mse"}}, "loss", "cannot change loss"),
        ({"overrides": {"dtype": "float32"}}, "dtype", "cannot change dtype"),
        ({"overrides": {"validation_split": 0.3}}, "validation_split", "training rows"),
        ({"overrides": {"optimizer.lr": 0.1}}, "optimizer.lr", "not a field"),
        ({"overrides": {"epochs": 10}, "epoch": 20}, "epochs", "greater than 20"),
        ({"overrides": {"optimizer.learning_rate": -1}}, "overrides", "learning_rate"),
        ({"epoch": 5, "overrides": {"dataset": {"builtin": "iris"}}}, "dataset", "does not fit"),
    ],
)
def test_bad_forks_are_refused_naming_the_field(client, sessions, settings, counts, body, field,
                                                words):  # fmt: skip
    parent = _run(client, sessions, settings, client.post("/v1/jobs", json=MOONS_JOB).json())
    before = counts()
    response = client.post(f"/v1/jobs/{parent['id']}/fork", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert field in ".".join(error["loc"]) and words in error["msg"]
    assert counts() == before


def test_an_idempotency_key_makes_a_retry_answer_the_same_fork(client, sessions, settings):
    parent = _run(client, sessions, settings, client.post("/v1/jobs", json=MOONS_JOB).json())
    key = {"Idempotency-Key": "fork-1"}
    body = {"epoch": 10, "overrides": {"optimizer.learning_rate": 0.01}}
    first = client.post(f"/v1/jobs/{parent['id']}/fork", json=body, headers=key)
    again = client.post(f"/v1/jobs/{parent['id']}/fork", json=body, headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    other = client.post(f"/v1/jobs/{parent['id']}/fork", json={"epoch": 11}, headers=key)
    assert other.status_code == 409 and first.json()["id"] in other.json()["message"]
    kids = client.get("/v1/jobs", params={"parent_id": parent["id"]}).json()["items"]
    assert len(kids) == 1


def test_another_owners_job_cannot_be_forked(client, sessions, settings):
    missing = client.post(f"/v1/jobs/{uuid.uuid4()}/fork", json={})
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("optimizer", "dtype"),
    [("sgd", "float32"), ("momentum", "float64"), ("nesterov", "float32"), ("adagrad", "float64"),
     ("rmsprop", "float32"), ("adam", "float32")],
)  # fmt: skip
def test_every_optimizer_and_dtype_forks_bit_identically(client, sessions, settings, optimizer,
                                                         dtype):  # fmt: skip
    body = MOONS_JOB | {"optimizer": {"name": optimizer, "learning_rate": 0.01}, "dtype": dtype}
    parent = _run(client, sessions, settings, client.post("/v1/jobs", json=body).json())
    fork = client.post(f"/v1/jobs/{parent['id']}/fork", json={"epoch": 17}).json()
    fork = _run(client, sessions, settings, fork)
    assert _epochs(client, fork["id"])["loss"] == _epochs(client, parent["id"])["loss"]
    last = parent["epochs_done"]
    a, b = (client.get(f"/v1/jobs/{j['id']}/snapshots/{last}/weights.npz").content
            for j in (parent, fork))  # fmt: skip
    za, zb = (np.load(io.BytesIO(z)) for z in (a, b))
    assert za["W1"].dtype == np.dtype(dtype)
    assert all(za[k].tobytes() == zb[k].tobytes() for k in za.files)
