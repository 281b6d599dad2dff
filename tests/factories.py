"""What the tests share besides fixtures: the seed's job body, jobs stored as the API stores
them, reference runs, row counts, and real services on a SQLite file with waits on their jobs.

Fixtures live in the conftest files; what is here are plain functions and constants, so
module-scoped and function-scoped fixtures, and tests themselves, can use them alike.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from api.datasets import materialise, store
from api.schemas import JobCreate
from backprop import Trainer, TrainSpec, datasets
from backprop.layout import Layout
from cli.services import Stack, free_port
from models import (
    history,
    trials,  # noqa: F401  (its tables, on the same metadata)
)
from models.base import Base
from models.db import make_engine, session_factory
from models.status import JobStatus
from models.tables import EPOCH_FIELDS, PER_LAYER_FIELDS, Batch, EpochChunk, Job

# CI sets it: a missing PostgreSQL, Redis or Chromium fails the run instead of skipping tests.
REQUIRED = os.environ.get("DELTAFLOW_REQUIRE_SERVICES") == "1"

# The seed's example as a job body: XOR on a 2-4-1 sigmoid network, quadratic cost, plain SGD.
XOR_JOB = {
    "name": "xor",
    "network": {"layers": [2, 4, 1]},
    "optimizer": {"learning_rate": 2.0},
    "epochs": 250,
    "snapshot_every": 50,
    "dataset": {"builtin": "xor"},
}
TERMINAL = {"succeeded", "failed", "cancelled", "stopped"}


def dying_job() -> tuple[dict, np.ndarray, np.ndarray]:
    """(job body, x, y): uncentred inputs and a large Adam step kill most ReLU units of layer 1
    by epoch 2, where stop_when ends the job (backprop/rules.py); the data inline."""
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 10, (301, 6)), rng.integers(0, 3, 301)
    spec = {
        "network": {"layers": [6, 12, 8, 3], "activation": "relu", "output_activation": "softmax"},
        "loss": "cross_entropy", "optimizer": {"name": "adam", "learning_rate": 0.3},
        "epochs": 50, "batch_size": 32, "shuffle": False, "seed": 2, "stop_when": ["dead_units"],
    }  # fmt: skip
    data = {"inline": {"x": x.tolist(), "y": y.tolist()}}
    return spec | {"name": "dies", "dataset": data}, x, y


# One client for the session: httpx.get() builds a client each time, and that client's TLS
# context alone cost ~35 ms of CPU, which loops polling a service paid several times a second.
HTTP = httpx.Client(timeout=30)


def unavailable(what: str, exc: Exception | str) -> None:
    """Skip the test for want of a service, or fail it where the service is required."""
    if REQUIRED:
        pytest.fail(f"{what} is required (DELTAFLOW_REQUIRE_SERVICES=1) but: {exc}")
    pytest.skip(f"{what} not available: {exc}")


@contextmanager
def sessions_on(url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the database at `url`; the engine is disposed afterwards."""
    engine = make_engine(url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def row_counts(sessions) -> dict[str, int]:
    """Rows in every table of the schema: equal before and after shows nothing was stored."""
    with sessions() as s:
        return {
            t.name: s.scalar(select(func.count()).select_from(t))
            for t in Base.metadata.sorted_tables
        }


def broker_messages(settings) -> int:
    """Messages waiting in the embedded broker's file."""
    db = sqlite3.connect(settings.broker_file)
    try:
        return db.execute("SELECT count(*) FROM kombu_message WHERE visible = 1").fetchone()[0]
    finally:
        db.close()


def store_job(sessions, body: dict, spec_override: dict | None = None) -> uuid.UUID:
    """A job stored as the API stores it (its data set too), without HTTP; its id."""
    request = JobCreate.model_validate(body)
    spec = request.spec().model_dump(mode="json") | (spec_override or {})
    with sessions.begin() as s:
        dataset = store(s, "default", *materialise(request.dataset))
        job = Job(
            name=request.name, tags={}, spec=spec, dataset_id=dataset.id,
            epochs_total=spec["epochs"],
        )  # fmt: skip
        s.add(job)
    return job.id


def reference(body: dict) -> Trainer:
    """An uninterrupted, in-process run of a job body on its built-in data set."""
    spec = TrainSpec.model_validate({k: v for k, v in body.items() if k not in ("name", "dataset")})
    options = dict(body["dataset"])
    data = datasets.load(options.pop("builtin"), **options)
    trainer = Trainer(spec, data.x, data.y)
    for _ in trainer.epochs():
        pass
    return trainer


def parameters(trainer: Trainer) -> list[bytes]:
    """W^1 … W^L, b^1 … b^L as bytes, to compare runs bit for bit."""
    return [W.tobytes() for W in trainer.weights] + [b.tobytes() for b in trainer.biases]


def stored_epochs(s: Session, job_id: uuid.UUID) -> list[int]:
    """Every epoch the job's stored history holds, chunk after chunk: an epoch stored twice
    shows twice, a missing one is missing."""
    spans = s.execute(
        select(EpochChunk.first_epoch, EpochChunk.last_epoch)
        .where(EpochChunk.job_id == job_id)
        .order_by(EpochChunk.first_epoch)
    ).all()
    return [e for first, last in spans for e in range(first, last + 1)]


def all_epochs(s: Session) -> np.ndarray:
    """The duration_ms of every stored epoch of every job: one value per epoch."""
    rows = s.execute(select(EpochChunk.job_id)).scalars().all()
    found = [history.epoch_columns(s, j, ["duration_ms"], 0)["duration_ms"] for j in set(rows)]
    return np.concatenate(found) if found else np.empty(0)


def stored_losses(s: Session, job_id: uuid.UUID) -> list[float]:
    return history.epoch_columns(s, job_id, ["loss"], 0)["loss"].tolist()


def snapshot_epochs(s: Session, job_id: uuid.UUID) -> list[int]:
    return history.snapshot_epochs(s, job_id, limit=10**9)


def stored_snapshot(s: Session, job_id: uuid.UUID, epoch: int, spec: dict):
    """(W^l list, b^l list) of the job's stored snapshot at `epoch`, in the seed's convention."""
    _, theta = history.snapshot(s, job_id, epoch, np.dtype(spec.get("dtype", "float64")))
    return Layout(spec["network"]["layers"]).split(theta)


def sqlite_stack(tmp: Path, workers: int = 1, **env: str) -> Stack:
    """A service (api, workers, reaper as processes; not started yet) on a SQLite file under
    `tmp`, its logs in tmp/logs. `env` adds or overrides DELTAFLOW_* settings."""
    env = {
        "DELTAFLOW_DATABASE_URL": f"sqlite:///{tmp}/db.sqlite",
        "DELTAFLOW_FLUSH_INTERVAL": "0.2",
        **env,
    }
    return Stack(port=free_port(), workers=workers, env=env, log_dir=tmp / "logs")


@contextmanager
def service(kind: str, databases, redis_indexes, tmp: Path, **env: str) -> Iterator[Stack]:
    """A running service on one set-up: "embedded" (SQLite + its broker) or
    "postgresql+redis" (a fresh PostgreSQL database and Redis index)."""
    env = {"DELTAFLOW_FLUSH_INTERVAL": "0.1", "DELTAFLOW_REAPER_INTERVAL": "0.5", **env}
    with ExitStack() as resources:
        if kind == "embedded":
            env["DELTAFLOW_DATABASE_URL"] = f"sqlite:///{tmp}/deltaflow.db"
        else:
            env["DELTAFLOW_DATABASE_URL"] = resources.enter_context(
                databases.postgres(migrated=False)
            )
            env["DELTAFLOW_BROKER_URL"] = resources.enter_context(redis_indexes.take())
        yield resources.enter_context(
            running(Stack(port=free_port(), env=env, log_dir=tmp / "logs"))
        )


@contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    """`stack` started, and stopped however the block ends (also when it fails to start)."""
    try:
        yield stack.start()
    finally:
        stack.stop()


def finished(job: dict) -> bool:
    return job["status"] in TERMINAL


def wait_for(
    url: str,
    job_id: str,
    done: Callable[[dict], bool] = finished,
    timeout: float = 60.0,
    **headers: str,
) -> dict:
    """The job as the API at `url` shows it once `done(job)`; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        job = HTTP.get(f"{url}/v1/jobs/{job_id}", headers=headers).json()
        if done(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not get there within {timeout} s: {job}")
        time.sleep(0.1)


def listed(url: str) -> dict[str, dict]:
    """Every job of the service at `url` by id, as its list shows them, in one request (a
    test's service holds fewer than a page of 500)."""
    page = HTTP.get(f"{url}/v1/jobs", params={"limit": 500}).json()
    return {job["id"]: job for job in page["items"]}


def wait_all(url: str, ids: list[str], timeout: float = 150) -> list[dict]:
    """The jobs `ids` in full once all have ended, or as they are after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = listed(url)
        if all(i in jobs and finished(jobs[i]) for i in ids):
            break
        time.sleep(0.3)
    return [HTTP.get(f"{url}/v1/jobs/{i}").json() for i in ids]


def finished_batch(url: str, n: int, epochs: int) -> str:
    """`n` finished XOR jobs of `epochs` epochs each, learning rates 1e-3 … 1, in one batch,
    their epochs written into the database at `url` as a worker writes them (training them
    would take minutes); the batch's id."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    rng = np.random.default_rng(0)
    rates = np.geomspace(1e-3, 1.0, n)
    ids = [store_job(sessions, XOR_JOB | {"name": f"lr {lr:.3g}", "epochs": epochs},
                     {"optimizer": {"name": "sgd", "learning_rate": float(lr)}})
           for lr in rates]  # fmt: skip
    at = np.arange(1, epochs + 1)
    with sessions.begin() as s:
        batch = Batch(name=f"{n} jobs", base={}, grid={})
        s.add(batch)
        s.flush()
        for job_id, lr in zip(ids, rates, strict=True):
            columns = {f: np.full((epochs, 2) if f in PER_LAYER_FIELDS else epochs, np.nan)
                       for f in EPOCH_FIELDS}  # fmt: skip
            columns |= {"loss": 0.25 * np.exp(-lr * at / 500) + rng.uniform(0, 1e-3, epochs),
                        "learning_rate": np.full(epochs, lr), "duration_ms": np.full(epochs, 0.1),
                        "grad_norm_weights": np.ones((epochs, 2)),
                        "grad_norm_biases": np.ones((epochs, 2))}  # fmt: skip
            history.write_epochs(s, job_id, 1, columns)
        s.execute(update(Job).where(Job.id.in_(ids)).values(
            status=JobStatus.SUCCEEDED, epochs_done=epochs, batch_id=batch.id))  # fmt: skip
    engine.dispose()
    return str(batch.id)
