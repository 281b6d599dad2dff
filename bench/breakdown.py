"""Where one small job's service time goes, step by step, on each set-up (issue 12, measure first).

    python bench/breakdown.py [--jobs 50] [--setups embedded,postgresql+redis] [--profile]

The job is what sweeps of small networks are made of: XOR 2-4-1, 200 epochs, a snapshot every
epoch (about 5 ms of numpy). Every cell is a median over `--jobs` jobs, in milliseconds.

1. Submitting, in this process through the real app (FastAPI's TestClient): checking and storing
   the job in its own committed transaction, publishing it, recording the publish; the rest is
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
from models import lifecycle
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


def _table_name(*args: Any) -> str:
    return f"write {args[1].__tablename__}"  # insert_ignore_rows(session, model, …)


def instrument(watch: Stopwatch) -> None:
    """Wrap what submitting and running a job call, where the callers look them up."""
    for owner, name, label in (
        (submission, "submit", "submit (all)"),
        (submission, "create_once", "check, store, commit"),
        (Queue, "publish", "publish to the broker"),
        (lifecycle, "mark_published", "record the publish"),
        (Runner, "run", "run (all)"),
        (Runner, "claim", "claim (commit included)"),
        (Runner, "_load", "load job, checkpoint, data"),
        (Trainer, "__init__", "build the Trainer"),
        (FlushBuffer, "add", "buffer epoch rows"),
        (FlushBuffer, "add_snapshot", "take snapshots (θ → bytes)"),
        (Runner, "_write", "flush (all)"),
        (lifecycle, "renew", "flush: renew lease, progress"),
        (worker.persist, "insert_ignore_rows", _table_name),
        (worker.persist, "checkpoint_values", "flush: encode checkpoint"),
        (worker.persist, "upsert", "flush: write checkpoint"),
        (lifecycle, "succeed", "flush: final status"),
        (Recorder, "write", "flush: metrics row"),
    ):
        watch.wrap(owner, name, label)


def derived(spent: dict[str, float]) -> dict[str, float]:
    """The steps no single function is: what is left of an enclosing step."""
    out = dict(spent)
    flush_parts = [k for k in spent if k.startswith(("flush:", "write "))]
    out["flush: commit, begin (the rest)"] = spent["flush (all)"] - sum(out[k] for k in flush_parts)
    out["buffer epoch rows"] -= spent.get("take snapshots (θ → bytes)", 0.0)
    inside = ("claim (commit included)", "load job, checkpoint, data", "build the Trainer",
              "buffer epoch rows", "take snapshots (θ → bytes)", "flush (all)")  # fmt: skip
    out["train the epochs, the rest"] = spent["run (all)"] - sum(out[k] for k in inside)
    return out


# The table's rows in the order a job meets them; "· " marks a part of the row above it.
ORDER = (
    "POST over HTTP",
    "· submit (all)",
    "· · check, store, commit",
    "· · publish to the broker",
    "· · record the publish",
    "· HTTP and FastAPI (the rest)",
    "created → claimed (one at a time)",
    "claimed → finished, in the worker",
    "· run (all)",
    "· · claim (commit included)",
    "· · load job, checkpoint, data",
    "· · build the Trainer",
    "· · train the epochs, the rest",
    "· · buffer epoch rows",
    "· · take snapshots (θ → bytes)",
    "· · flush (all)",
    "· · · flush: renew lease, progress",
    "· · · write epochs",
    "· · · write snapshots",
    "· · · flush: encode checkpoint",
    "· · · flush: write checkpoint",
    "· · · flush: final status",
    "· · · flush: metrics row",
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
