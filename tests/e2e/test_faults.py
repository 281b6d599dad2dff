"""Fault injection with real processes: workers killed whole or in part, messages duplicated,
redelivered or lost, poison jobs, cancellations, shutdowns. Each scenario ends with the same
SQL checks (`check_invariants`): every job ended; each succeeded job has each epoch exactly
once and the parameters of an uninterrupted run, bit for bit; no two attempts on a job overlap;
no job used more than max_attempts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis
from sqlalchemy import select

from backprop import Trainer, TrainSpec, datasets
from cli.services import Stack, free_port
from models.db import make_engine, session_factory
from models.tables import Job, JobAttempt
from settings import Settings
from tests.factories import HTTP, TERMINAL, listed, stored_epochs, stored_snapshot, wait_all
from worker.celery_app import make_celery, publish

MAX_ATTEMPTS = 8
JOB = {
    "network": {"layers": [2, 8, 1], "activation": "tanh"},
    "loss": "binary_cross_entropy",
    "optimizer": {"name": "momentum", "learning_rate": 0.05},
    "epochs": 1500,
    "batch_size": 10,
    "snapshot_every": 100,
    "dataset": {"builtin": "moons", "n": 100},
}
DATA = (lambda d: (d.x, d.y))(datasets.load("moons", n=100))


def env_for(kind: str, tmp_path, request, **extra: str) -> dict[str, str]:
    env = {
        "DELTAFLOW_FLUSH_INTERVAL": "0.2",
        # A checkpoint every few flushes, as in production (every 10 s there): a resumed job
        # restores one and replays the epochs stored after it without storing them again.
        "DELTAFLOW_CHECKPOINT_INTERVAL": "0.5",
        "DELTAFLOW_LEASE_TTL": "2",
        "DELTAFLOW_REAPER_INTERVAL": "0.5",
        "DELTAFLOW_REPUBLISH_AFTER": "2",
        "DELTAFLOW_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "DELTAFLOW_FAULT_HOOKS": "1",
    }
    if kind == "embedded":
        env["DELTAFLOW_DATABASE_URL"] = f"sqlite:///{tmp_path}/deltaflow.db"
    else:
        env["DELTAFLOW_DATABASE_URL"] = request.getfixturevalue("postgres_url")
        env["DELTAFLOW_BROKER_URL"] = request.getfixturevalue("redis_url")
    return env | extra


class FaultStack(Stack):
    """A Stack whose Celery workers give up on a killed pool process's result after 1 s
    (worker_lost_wait, 10 s by default) before rejecting its message: the same path as in
    production, where those seconds only delay a redelivery that the lease makes harmless."""

    def commands(self) -> dict[str, list[str]]:
        return {
            name: [*argv, "worker_lost_wait=1"] if name.startswith("worker-") else argv
            for name, argv in super().commands().items()
        }


def start(env, tmp_path, workers: int = 2) -> Stack:
    stack = FaultStack(port=free_port(), workers=workers, env=env, log_dir=tmp_path / "logs")
    return stack.start()


def submit(stack: Stack, n: int, **changes) -> list[str]:
    bodies = [JOB | {"name": f"job-{i}", "seed": i} | changes for i in range(n)]
    ids = []
    for body in bodies:
        r = HTTP.post(f"{stack.url}/v1/jobs", json=body)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


def restart(stack: Stack, name: str) -> None:
    stack.start_process(name, stack.commands()[name])


@pytest.fixture(scope="session")
def references(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where uninterrupted runs are kept for this test run, shared by the xdist workers (the
    same specs recur across scenarios, and each costs a second of CPU)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = shared / "references"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def invariants(references: Path):
    """check_invariants, with the uninterrupted runs shared by this test run."""
    return lambda stack, ids: check_invariants(stack, ids, references)


def reference(spec: dict, cache: Path) -> list[bytes]:
    """Parameters after an uninterrupted run of `spec` on JOB's data, as bytes (cached)."""
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    path = cache / f"{key}.npz"
    if not path.exists():
        trainer = Trainer(TrainSpec.model_validate(spec), *DATA)
        for _ in trainer.epochs():
            pass
        partial = cache / f"{key}.{os.getpid()}.npz"
        np.savez(partial, *trainer.weights, *trainer.biases)
        partial.replace(path)  # whole or absent to a worker reading it concurrently
    with np.load(path) as arrays:
        return [arrays[f"arr_{i}"].tobytes() for i in range(len(arrays.files))]


def check_invariants(stack: Stack, ids: list[str], references: Path) -> dict[str, int]:
    """The SQL checks every scenario ends with; returns the jobs counted by status."""
    engine = make_engine(stack.env["DELTAFLOW_DATABASE_URL"])
    counts: dict[str, int] = {}
    try:
        with session_factory(engine)() as s:
            for job_id in map(uuid.UUID, ids):
                job = s.get_one(Job, job_id)
                counts[job.status] = counts.get(job.status, 0) + 1
                assert job.status in TERMINAL, f"job {job_id} is still {job.status}"
                assert job.attempt <= MAX_ATTEMPTS
                _check_attempts(s, job)
                _check_epochs(s, job, references)
    finally:
        engine.dispose()
    return counts


def _check_attempts(s, job: Job) -> None:
    attempts = s.scalars(
        select(JobAttempt).where(JobAttempt.job_id == job.id).order_by(JobAttempt.attempt)
    ).all()
    for earlier, later in itertools.pairwise(attempts):
        assert earlier.ended_at is not None
        assert earlier.ended_at <= later.started_at, "two workers held the job at once"
    assert all(a.ended_at is not None for a in attempts)


def _check_epochs(s, job: Job, references: Path) -> None:
    epochs = stored_epochs(s, job.id)  # a fork's own: its parent's are stored with the parent
    first = (job.forked_at_epoch or 0) + 1
    assert epochs == list(range(first, job.epochs_done + 1)), "an epoch is missing or stored twice"
    if job.status != "succeeded":
        return
    assert job.epochs_done == job.epochs_total
    Ws, bs = stored_snapshot(s, job.id, job.epochs_total, job.spec)
    got = [a.copy().tobytes() for a in Ws + bs]
    assert got == reference(job.spec, references), f"job {job.id} differs from an uninterrupted run"


@pytest.fixture(params=["embedded", "postgresql+redis"])
def kind(request):
    return request.param


def test_whole_workers_killed_five_times(invariants, kind, tmp_path, request):
    stack = start(env_for(kind, tmp_path, request), tmp_path)
    try:
        ids = submit(stack, 20)
        rng = random.Random(1)
        for _ in range(5):
            time.sleep(rng.uniform(0.5, 2.0))
            name = rng.choice(["worker-1", "worker-2"])
            stack.processes[name].send_signal(signal.SIGKILL)  # its pool child follows
            stack.processes[name].wait()
            time.sleep(1.0)
            restart(stack, name)
        wait_all(stack.url, ids)
        assert invariants(stack, ids) == {"succeeded": 20}
    finally:
        stack.stop()


def test_forks_with_their_workers_killed(invariants, kind, tmp_path, request):
    """Forks of finished jobs that train them longer, their workers killed mid-run: each
    rebuilds its parent's state, resumes from its own checkpoints, and ends bit-identical to
    an uninterrupted run of its spec (the parent's, with more epochs)."""
    stack = start(env_for(kind, tmp_path, request), tmp_path)
    try:
        parents = submit(stack, 4)
        wait_all(stack.url, parents)
        forks = []
        for i, parent in enumerate(parents):
            body = {"epoch": 300 + 200 * i, "overrides": {"epochs": 6000}}
            r = HTTP.post(f"{stack.url}/v1/jobs/{parent}/fork", json=body)
            assert r.status_code == 201, r.text
            forks.append(r.json()["id"])
        rng = random.Random(2)
        for _ in range(3):
            time.sleep(rng.uniform(0.3, 1.0))
            name = rng.choice(["worker-1", "worker-2"])
            stack.processes[name].send_signal(signal.SIGKILL)
            stack.processes[name].wait()
            time.sleep(0.5)
            restart(stack, name)
        jobs = wait_all(stack.url, forks)
        assert invariants(stack, parents + forks) == {"succeeded": 8}
        assert sum(j["attempt"] for j in jobs) > len(forks), "no kill landed on a fork"
    finally:
        stack.stop()


def _pool_child(stack: Stack, name: str) -> int | None:
    out = subprocess.run(
        ["pgrep", "-P", str(stack.processes[name].pid)], capture_output=True, text=True
    ).stdout.split()
    return int(out[0]) if out else None


def test_pool_children_killed_mid_epoch(invariants, tmp_path, request):
    stack = start(env_for("embedded", tmp_path, request), tmp_path, workers=1)
    try:
        ids = submit(stack, 6, epochs=5000)  # ~1.5 s each: every kill lands mid-job
        killed, seen, deadline = 0, {}, time.monotonic() + 120
        while killed < 5:
            assert time.monotonic() < deadline, f"only {killed} kills landed mid-job"
            time.sleep(0.3)
            child = _pool_child(stack, "worker-1")
            progress = {i: job["epochs_done"] for i, job in listed(stack.url).items()}
            # A kill lands mid-epoch only while a job is visibly advancing in this child.
            advancing = any(progress[i] > seen.get(i, progress[i]) for i in progress)
            seen = progress
            if child and advancing:
                subprocess.run(["kill", "-KILL", str(child)], check=False)
                killed, seen = killed + 1, {}
        wait_all(stack.url, ids)
        assert invariants(stack, ids) == {"succeeded": 6}
    finally:
        stack.stop()


def test_every_job_published_twice(invariants, kind, tmp_path, request):
    env = env_for(kind, tmp_path, request)
    stack = start(env, tmp_path)
    try:
        ids = submit(stack, 10)
        settings = Settings(
            database_url=env["DELTAFLOW_DATABASE_URL"], broker_url=env.get("DELTAFLOW_BROKER_URL")
        )
        app = make_celery(settings)
        for job_id in ids:
            publish(app, uuid.UUID(job_id))
        wait_all(stack.url, ids)
        assert invariants(stack, ids) == {"succeeded": 10}
    finally:
        stack.stop()


def test_redis_redelivers_a_job_that_outlives_its_visibility_timeout(invariants, tmp_path, request):
    env = env_for("postgresql+redis", tmp_path, request, DELTAFLOW_BROKER_VISIBILITY_TIMEOUT="1")
    stack = start(env, tmp_path)
    try:
        ids = submit(stack, 4, epochs=4000)  # several seconds each: redelivered while running
        wait_all(stack.url, ids)
        assert invariants(stack, ids) == {"succeeded": 4}
    finally:
        stack.stop()


def test_the_queue_emptied_mid_run(invariants, tmp_path, request):
    env = env_for("postgresql+redis", tmp_path, request)
    stack = start(env, tmp_path, workers=1)
    try:
        ids = submit(stack, 8)
        time.sleep(1.0)
        redis.Redis.from_url(env["DELTAFLOW_BROKER_URL"]).flushdb()  # queued messages gone
        wait_all(stack.url, ids)
        assert invariants(stack, ids) == {"succeeded": 8}
    finally:
        stack.stop()


def test_a_poison_job_fails_after_max_attempts(invariants, kind, tmp_path, request):
    stack = start(env_for(kind, tmp_path, request, DELTAFLOW_MAX_ATTEMPTS="3"), tmp_path)
    try:
        (poison,) = submit(stack, 1, tags={"deltaflow.fault": "kill:3"})
        healthy = submit(stack, 3)
        jobs = wait_all(stack.url, [poison, *healthy], timeout=200)
        assert jobs[0]["status"] == "failed"
        assert jobs[0]["error"].startswith("gave up after 3 attempts")
        assert [a["reason"] for a in jobs[0]["attempts"]] == ["lease expired"] * 3
        assert invariants(stack, [poison, *healthy]) == {"failed": 1, "succeeded": 3}
    finally:
        stack.stop()


def test_cancel_at_a_random_epoch(invariants, kind, tmp_path, request):
    stack = start(env_for(kind, tmp_path, request), tmp_path)
    try:
        ids = submit(stack, 20, epochs=20000)
        rng = random.Random(2)
        for job_id in ids:
            time.sleep(rng.uniform(0.0, 0.3))
            r = HTTP.post(f"{stack.url}/v1/jobs/{job_id}/cancel", timeout=30)
            assert r.status_code == 202, r.text
        jobs = wait_all(stack.url, ids)
        assert {j["status"] for j in jobs} == {"cancelled"}
        for job in jobs:  # seen at the next flush (0.2 s); slack for a loaded machine
            asked = job["cancel_requested_at"]
            assert _seconds_between(asked, job["finished_at"]) < 1.5
        invariants(stack, ids)
    finally:
        stack.stop()


def _seconds_between(a: str, b: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def test_a_stopped_worker_hands_its_job_over(invariants, tmp_path, request):
    stack = start(env_for("embedded", tmp_path, request), tmp_path, workers=1)
    try:
        (job_id,) = submit(stack, 1, epochs=5000)  # stopped within its first second
        while HTTP.get(f"{stack.url}/v1/jobs/{job_id}").json()["epochs_done"] == 0:
            time.sleep(0.05)
        worker = stack.processes["worker-1"]
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)  # within an epoch and a flush, not at the end of the job
        job = HTTP.get(f"{stack.url}/v1/jobs/{job_id}").json()
        assert (job["status"], job["attempt"]) == ("queued", 0)
        restart(stack, "worker-1")
        (job,) = wait_all(stack.url, [job_id])
        assert job["status"] == "succeeded"
        invariants(stack, [job_id])
    finally:
        stack.stop()


def test_an_idle_worker_stops_cleanly(tmp_path, request):
    """SIGTERM to a worker whose pool process never ran a job: it exits 0, and no pool
    process ends abruptly (the release signal goes to busy pool processes only)."""
    stack = start(env_for("embedded", tmp_path, request), tmp_path, workers=1)
    try:
        log = tmp_path / "logs" / "worker-1.log"
        deadline = time.monotonic() + 30
        while "ready." not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        worker = stack.processes["worker-1"]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        assert "exited with" not in log.read_text(), log.read_text()
    finally:
        stack.stop()


def test_a_crash_between_commit_and_publish(invariants, kind, tmp_path, request):
    env = env_for(kind, tmp_path, request, DELTAFLOW_FAULT_DROP_PUBLISH="1")
    stack = start(env, tmp_path)
    try:
        ids = submit(stack, 6)  # committed, never published by the API
        jobs = wait_all(stack.url, ids)
        assert {j["status"] for j in jobs} == {"succeeded"}  # the reaper published them
        assert invariants(stack, ids) == {"succeeded": 6}
    finally:
        stack.stop()


def test_the_embedded_broker_file_deleted_mid_run(invariants, tmp_path, request):
    stack = start(env_for("embedded", tmp_path, request), tmp_path, workers=1)
    try:
        ids = submit(stack, 8)
        time.sleep(1.0)
        for suffix in ("", "-wal", "-shm"):  # queued messages gone with the file
            (tmp_path / f"broker.sqlite{suffix}").unlink(missing_ok=True)
        more = submit(stack, 2)  # published into the new file
        wait_all(stack.url, ids + more)
        assert invariants(stack, ids + more) == {"succeeded": 10}
    finally:
        stack.stop()
