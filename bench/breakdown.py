"""Where one small job's service time goes, step by step, on each set-up (issue 12, measure first).

    python bench/breakdown.py [--jobs 50] [--setups embedded,postgresql+redis] [--profile]

The job is what sweeps of small networks are made of: XOR 2-4-1, 200 epochs, a snapshot every
epoch (about 5 ms of numpy). Every cell is a median over `--jobs` jobs, in milliseconds.

1. Submitting, in this process through the real app (FastAPI's TestClient): checking and storing
   the job (marked published) in its own committed transaction, publishing it; the rest is
   FastAPI (parsing the body, the answer).
2. Inside the worker: the real Runner in this process, on the jobs just submitted, its steps
   timed by wrapping the functions it calls — the code the Celery task runs: claim; load (job
   row, checkpoint, data set, kept decoded between jobs as a worker does); the Trainer built; the
   epochs trained; epoch rows and snapshots buffered; and the one flush at the end: epoch rows,
   snapshots, the checkpoint (encoded, written), the fenced lease renewal with the progress, the
   final status, the metrics row, and the commit (what the transaction took besides).
3. End to end through a real service (API, one Celery worker, reaper as processes): the POST's
   round trip over HTTP; created → claimed (commit, publish, broker, Celery, the claim) for jobs
   submitted one at a time; the claim → finished in the worker; and, for jobs queued all at
   once, one job's end → the next one's claim on the busy worker (ack, next message, task start).
4. With --profile, py-spy samples the worker's pool process while it works through a backlog of
   200 such jobs, and the samples are counted by the package of their innermost frame.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import worker.persist
from api import submission
from api.app import create_app
from api.queue import Queue
from backprop.train import Trainer
from bench.setups import SETUPS, environment
from cli.services import Stack, free_port
from models import history, lifecycle
from models.db import make_engine, session_factory
from models.migrate import upgrade
from models.status import TERMINAL
from models.tables import Job, JobAttempt
from settings import Settings
from worker.celery_app import make_celery, prepare_broker
from worker.metrics import Recorder
from worker.persist import FlushBuffer
from worker.runner import Runner

JOB = {"name": "breakdown", "network": {"layers": [2, 4, 1]}, "optimizer": {"learning_rate": 2.0},
       "epochs": 200, "snapshot_every": 1, "dataset": {"builtin": "xor"}}  # fmt: skip


class Stopwatch:
    """Time spent in wrapped functions, per label, since the last `lap`."""

    def __init__(self) -> None:
        self.spent: defaultdict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, name: str, label: str | Callable[..., str]) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                key = label(*args) if callable(label) else label
                self.spent[key] += time.perf_counter() - started

        setattr(owner, name, timed)

    def lap(self) -> dict[str, float]:
        spent, self.spent = dict(self.spent), defaultdict(float)
        return spent


# What submitting and running a job call, where the callers look them up: (owner, function,
# label, depth in the table). A step's parts follow it one level deeper.
STEPS: tuple[tuple[Any, str, str, int], ...] = (
    (submission, "submit", "submit (all)", 1),
    (submission, "create_once", "check, store, commit", 2),
    (Queue, "publish", "publish to the broker", 2),
    (lifecycle, "unpublish", "unmark a failed publish (0 unless the broker refused)", 2),
    (Runner, "run", "run (all)", 1),
    (Runner, "claim", "claim: take the job, its spec, checkpoint, attempt row", 2),
    (Runner, "_trainer", "load the data, build the Trainer", 2),
    (Trainer, "__init__", "build the Trainer", 3),
    (FlushBuffer, "add", "buffer epochs", 2),
    (FlushBuffer, "add_snapshot", "take snapshots (θ → bytes)", 2),
    (Runner, "_write", "flush (all)", 2),
    (Runner, "_move", "flush: the fenced UPDATE (renew, or end the job)", 3),
    (history, "write_epochs", "flush: write the epochs (one row)", 3),
    (history, "write_snapshots", "flush: write the snapshots", 3),
    (worker.persist, "checkpoint_values", "flush: encode the checkpoint", 3),
    (worker.persist, "upsert", "flush: write the checkpoint", 3),
    (Recorder, "write", "flush: metrics row", 3),
)


def instrument(watch: Stopwatch) -> None:
    for owner, name, label, _ in STEPS:
        watch.wrap(owner, name, label)


def derived(spent: dict[str, float]) -> dict[str, float]:
    """The steps no single function is: what is left of an enclosing step."""
    out = {label: spent.get(label, 0.0) for _, _, label, _ in STEPS} | dict(spent)
    flush_parts = [label for _, _, label, depth in STEPS if label.startswith("flush:")]
    rest = out["flush (all)"] - sum(out[k] for k in flush_parts)
    out["flush: commit, begin (the rest)"] = rest
    out["buffer epochs"] -= out["take snapshots (θ → bytes)"]
    inside = [label for _, _, label, depth in STEPS[5:11] if depth == 2]
    out["train the epochs, the rest"] = out["run (all)"] - sum(out[k] for k in inside)
    return out


def _row(label: str, depth: int) -> str:
    return "· " * depth + label


# The table's rows in the order a job meets them; "· " marks a part of the row above it.
ORDER = (
    "POST over HTTP",
    *(_row(label, depth) for _, _, label, depth in STEPS[:4]),
    "· HTTP and FastAPI (the rest)",
    "created → claimed (one at a time)",
    "claimed → finished, in the worker",
    *(_row(label, depth) for _, _, label, depth in STEPS[4:10]),
    "· · train the epochs, the rest",
    *(_row(label, depth) for _, _, label, depth in STEPS[10:]),
    "· · · flush: commit, begin (the rest)",
    "finished → next claimed (backlog)",
)


def in_process(settings: Settings, jobs: int, watch: Stopwatch) -> list[dict[str, float]]:
    """Parts 1 and 2: each job submitted through the app, then run by a Runner here."""
    upgrade(settings.database_url)
    prepare_broker(make_celery(settings), settings)
    engine = make_engine(settings.database_url)
    runner = Runner(session_factory(engine), settings)
    laps = []
    with TestClient(create_app(settings)) as client:
        for i in range(jobs + 1):  # the first warms the data cache, as a worker's first job
            answer = client.post("/v1/jobs", json=JOB | {"seed": i})
            assert answer.status_code == 201, answer.text
            assert runner.run(uuid.UUID(answer.json()["id"])) in TERMINAL
            spent = watch.lap()
            if i:
                laps.append(derived(spent))
    engine.dispose()
    return laps


def end_to_end(env: dict[str, str], jobs: int, home: Path) -> dict[str, list[float]]:
    """Part 3, through a real service with one worker."""
    stack = Stack(port=free_port(), workers=1, env=env, log_dir=home / "logs")
    stack.start()
    out: dict[str, list[float]] = defaultdict(list)
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            one_by_one = []
            for i in range(jobs):
                started = time.perf_counter()
                one_by_one.append(http.post("/v1/jobs", json=JOB | {"seed": i}).json()["id"])
                out["POST over HTTP"].append(time.perf_counter() - started)
                _wait(http, one_by_one[-1:])
            backlog = [
                http.post("/v1/jobs", json=JOB | {"seed": i}).json()["id"] for i in range(jobs)
            ]
            _wait(http, backlog)
        rows = _timestamps(env["DELTAFLOW_DATABASE_URL"])
    finally:
        stack.stop()
    for job_id in one_by_one:
        created, claimed, finished = rows[job_id]
        out["created → claimed (one at a time)"].append(claimed - created)
        out["claimed → finished, in the worker"].append(finished - claimed)
    ordered = sorted((rows[j] for j in backlog), key=lambda r: r[1])
    for before, after in itertools.pairwise(ordered):
        out["finished → next claimed (backlog)"].append(after[1] - before[2])
    return out


def _wait(http: httpx.Client, ids: list[str]) -> None:
    for job_id in ids:
        while http.get(f"/v1/jobs/{job_id}").json()["status"] not in TERMINAL:
            time.sleep(0.005)


def _timestamps(url: str) -> dict[str, tuple[float, float, float]]:
    """job id → (created, first claim, finished) as seconds, from the database's own stamps."""
    engine = make_engine(url)
    with session_factory(engine)() as s:
        rows = s.execute(
            select(Job.id, Job.created_at, JobAttempt.started_at, Job.finished_at)
            .join(JobAttempt, JobAttempt.job_id == Job.id)
            .where(JobAttempt.attempt == 1)
        ).all()
    engine.dispose()
    return {str(r[0]): (r[1].timestamp(), r[2].timestamp(), r[3].timestamp()) for r in rows}


def profile(env: dict[str, str], home: Path, jobs: int = 200) -> Counter[str]:
    """Part 4: py-spy's samples of the pool process, by the package of the innermost frame."""
    stack = Stack(port=free_port(), workers=1, env=env, log_dir=home / "logs")
    stack.start()
    try:
        main = stack.processes["worker-1"].pid
        child = int(Path(f"/proc/{main}/task/{main}/children").read_text().split()[0])
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            ids = [http.post("/v1/jobs", json=JOB | {"seed": i}).json()["id"] for i in range(jobs)]
            raw = home / "pyspy.txt"
            argv = ["py-spy", "record", "--pid", str(child), "--rate", "250", "--format", "raw",
                    "--output", str(raw), "--nonblocking"]  # fmt: skip
            spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait(http, ids)
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
    finally:
        stack.stop()
    return _by_package(raw.read_text())


PACKAGES = (
    ("engine (backprop, numpy)", ("backprop/", "numpy/")),
    ("psycopg (PostgreSQL's driver)", ("psycopg",)),
    ("SQLAlchemy (with sqlite3's C calls)", ("sqlalchemy/", "sqlite3/")),
    ("Celery, kombu, billiard, redis", ("celery/", "kombu/", "billiard/", "redis/")),
    ("deltaflow worker and models", ("worker/", "models/")),
    ("logging, json", ("logging/", "json", "pythonjsonlogger/")),
)


def _by_package(folded: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in folded.splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")[::-1]  # innermost first
        kind = next((label for f in frames for label, keys in PACKAGES
                     if any(k in f for k in keys)), "other (standard library)")  # fmt: skip
        counts[kind] += int(n)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    setups = args.setups.split(",")
    watch = Stopwatch()
    instrument(watch)
    steps: dict[str, dict[str, float]] = defaultdict(dict)
    profiles = {}
    for setup in setups:
        with tempfile.TemporaryDirectory() as tmp, environment(setup, Path(tmp)) as env:
            settings = Settings(**{k.removeprefix("DELTAFLOW_").lower(): v for k, v in env.items()})
            for lap_label, values in _columns(in_process(settings, args.jobs, watch)).items():
                steps[lap_label][setup] = statistics.median(values)
        with tempfile.TemporaryDirectory() as tmp, environment(setup, Path(tmp)) as env:
            for label, values in end_to_end(env, args.jobs, Path(tmp)).items():
                steps[label][setup] = statistics.median(values)
            if args.profile:
                profiles[setup] = profile(env, Path(tmp))
        http, submit = steps["POST over HTTP"], steps["submit (all)"]
        steps["HTTP and FastAPI (the rest)"][setup] = http[setup] - submit[setup]
    print(f"| step (median of {args.jobs} jobs, ms) | " + " | ".join(setups) + " |")
    print("|---" * (len(setups) + 1) + "|")
    for label in ORDER:
        cells = [steps[label.strip(" ·")].get(s) for s in setups]
        print(f"| {label} | " + " | ".join(f"{c * 1e3:.2f}" for c in cells) + " |")
    for setup, counts in profiles.items():
        total = sum(counts.values())
        print(f"\npy-spy, worker pool process, {setup}: {total} samples while busy")
        for kind, n in counts.most_common():
            print(f"| {kind} | {100 * n / total:.1f} % |")


def _columns(laps: list[dict[str, float]]) -> dict[str, list[float]]:
    columns: dict[str, list[float]] = defaultdict(list)
    for lap in laps:
        for label, value in lap.items():
            columns[label].append(value)
    return columns


if __name__ == "__main__":
    main()
