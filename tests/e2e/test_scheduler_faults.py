"""Scheduled batches (successive halving, PBT) while every kind of process is SIGKILLed —
workers, the reaper, the API — on both set-ups. Each ends with every trial terminal, each
epoch stored exactly once, no trial promoted twice from a rung, a closed rung keeping ⌈n/η⌉,
and promoted trials bit-identical to an uninterrupted run of their configuration."""

from __future__ import annotations

import math
import random
import signal
import time
import uuid
from collections import Counter

from sqlalchemy import select

from models.db import make_engine, session_factory
from models.tables import Job
from models.trials import Decision, Rung
from tests.e2e.test_faults import JOB, _check_attempts, _check_epochs, env_for, restart, start
from tests.factories import HTTP, TERMINAL
from tests.factories import listed as jobs_of

# test_faults' fixtures, for this module too.
pytest_plugins = ["tests.e2e.test_faults"]

BASE = JOB | {"name": "trial", "epochs": 1350, "snapshot_every": 50}
LR = {"optimizer.learning_rate": {"loguniform": [0.01, 0.2]}}


def _batch(stack, scheduler: dict, n: int) -> str:
    body = {"name": "tune", "base": BASE, "space": LR, "num_samples": n, "seed": 5,
            "scheduler": scheduler}  # fmt: skip
    r = HTTP.post(f"{stack.url}/v1/batches", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _kill_everything_now_and_then(stack, batch_id: str, seed: int, timeout: float = 240) -> dict:
    """SIGKILL a random process every second or so, restarting it, until the batch is done."""
    rng = random.Random(seed)
    names = ["worker-1", "worker-2", "worker-1", "worker-2", "reaper", "api"]
    kills, deadline = Counter(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.4, 1.2))
        if sum(kills.values()) < 8:
            name = rng.choice(names)
            stack.processes[name].send_signal(signal.SIGKILL)
            stack.processes[name].wait()
            restart(stack, name)
            if name == "api":
                stack.wait_ready(30)
            kills[name] += 1
        out = HTTP.get(f"{stack.url}/v1/batches/{batch_id}").json()
        if out["done"] == out["total"]:
            assert sum(kills.values()) >= 3, f"the batch ended after {kills} kills"
            return out | {"kills": kills}
    raise AssertionError(f"batch {batch_id} did not end within {timeout} s: {out['counts']}")


def _decisions_consistent(stack, batch_id: str, eta: int | None) -> None:
    engine = make_engine(stack.env["DELTAFLOW_DATABASE_URL"])
    try:
        with session_factory(engine)() as s:
            jobs = {
                j.id: j for j in s.scalars(select(Job).where(Job.batch_id == uuid.UUID(batch_id)))
            }
            log = s.scalars(select(Decision).where(Decision.batch_id == uuid.UUID(batch_id))).all()
            rungs = s.scalars(select(Rung).where(Rung.batch_id == uuid.UUID(batch_id))).all()
    finally:
        engine.dispose()
    assert all(j.status in TERMINAL for j in jobs.values())
    promoted = Counter((d.job_id, d.rung) for d in log if d.action == "promoted")
    assert set(promoted.values()) <= {1}, "a trial was promoted twice from one rung"
    assert {(r.job_id, r.rung) for r in rungs if r.promoted} == set(promoted)
    stopped = Counter(d.job_id for d in log if d.action == "stopped")
    assert set(stopped.values()) <= {1}
    assert set(stopped) == {i for i, j in jobs.items() if j.status == "stopped"}
    if eta is not None:  # every rung closed: it kept ⌈n/η⌉
        per_rung = Counter((r.bracket, r.rung) for r in rungs)
        kept = Counter((r.bracket, r.rung) for r in rungs if r.promoted)
        for key, n in per_rung.items():
            if key[1] < max(k[1] for k in per_rung):
                assert kept[key] == math.ceil(n / eta), (key, n, kept[key])


def test_successive_halving_with_every_process_killed(invariants, kind, tmp_path, request):
    """sha's decisions do not depend on the order trials arrive in, so the budget is exact
    whatever the kills did (ASHA's do: tests/api/test_schedulers.py runs it deterministically)."""
    stack = start(env_for(kind, tmp_path, request), tmp_path)
    try:
        sha = {"name": "sha", "min_epochs": 50, "reduction_factor": 3}
        batch_id = _batch(stack, sha, 9)
        out = _kill_everything_now_and_then(stack, batch_id, seed=1)
        ids = [t["job_id"] for t in out["trials"]]
        counts = invariants(stack, ids)  # promoted to the end = an uninterrupted run
        assert counts == {"succeeded": 1, "stopped": 8}
        _decisions_consistent(stack, batch_id, eta=3)
        assert out["epochs_trained"] == 9 * 50 + 3 * 100 + 1 * 1200
    finally:
        stack.stop()


def test_pbt_with_every_process_killed(kind, tmp_path, request, references):
    stack = start(env_for(kind, tmp_path, request), tmp_path)
    try:
        cfg = {"name": "pbt", "perturbation_interval": 450, "quantile_fraction": 0.5}
        batch_id = _batch(stack, cfg, 4)
        out = _kill_everything_now_and_then(stack, batch_id, seed=2)
        _decisions_consistent(stack, batch_id, eta=None)
        clones = [d for d in out["decisions"] if d["action"] == "cloned"]
        assert len(clones) == 4  # two at each of epochs 450 and 900
        engine = make_engine(stack.env["DELTAFLOW_DATABASE_URL"])
        try:
            with session_factory(engine)() as s:
                for t in out["trials"]:
                    job = s.get_one(Job, uuid.UUID(t["job_id"]))
                    _check_attempts(s, job)
                    if job.parent_id is None:  # a clone's spec is not its parent's
                        _check_epochs(s, job, references)
        finally:
            engine.dispose()
        assert len(jobs_of(stack.url)) == 8
    finally:
        stack.stop()
