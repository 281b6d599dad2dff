"""A soak: a real service under faults for --minutes, then the SQL checks and a summary.

    python bench/soak.py [--minutes 10] [--setup postgresql+redis|embedded] [--workers 2]

The service is `cli.services.Stack` (uvicorn API, --workers Celery workers, the reaper) on its
own PostgreSQL cluster (initdb into a temporary directory, as the `postgres` user when run as
root) and its own redis-server on free ports, never the machine's: those are shared with test
suites. Settings are the fault tests' (tests/e2e/test_faults.py `env_for`): a 2 s lease, a
reaper pass every 0.5 s, republish after 2 s, flushes every 0.2 s and checkpoints every 0.5 s.

For --minutes the soak keeps the workers busy: plain jobs (three optimizers, 200–1,600 epochs)
kept --depth deep and paced so that at least --min-jobs exist by 80 % of the run, an ASHA batch
and a PBT batch at a time (each replaced by a new one as it ends); and every 2–5 s it SIGKILLs a
process — a worker (with its pool process) most times, sometimes the reaper or the API — and
starts it again. On PostgreSQL + Redis it also restarts Redis (killed, and started empty: no
persistence) and PostgreSQL (`pg_ctl restart -m fast`), about once every two minutes each (at
least once). `--setup embedded` (SQLite, the embedded broker) only kills processes.

Then, faults over, it waits for every job to end and checks with SQL:
- every job terminal; succeeded and scheduler-stopped are the only ends expected here;
- each job's own epochs stored exactly once: `lost` are epochs up to epochs_done (up to
  epochs_total for a succeeded job) that no chunk holds, `duplicated` are stored epochs beyond
  the first copy, or beyond epochs_done;
- attempts of a job never overlap, all are closed, none beyond max_attempts;
- bit identity: every job that is not a PBT clone (a clone is a fork with changed
  hyperparameters), succeeded or stopped, has at its last epoch the parameters of an
  uninterrupted in-process run of its spec (`backprop.Trainer`) after as many epochs;
- the decision log of each batch (models/trials.py): promoted at most once per (job, rung),
  paused at most once; the rungs marked promoted are exactly the promoted decisions; a job is
  stopped iff it has one stopped decision; each PBT clone has one cloned decision; a closed
  halving rung kept ⌈n/η⌉ — for ASHA, or more where its asynchronous rule had already promoted
  more while the rung was open (a trial goes on as soon as it is in the top ⌊k/η⌋ of the k
  arrived, and is never taken back), so ASHA's promotions are also replayed from the log, in
  the order of the arrivals, and must be exactly the replay's.
Exit status 1 when any check fails (details follow the table). The summary also gives resumes
and kill-to-resume times from job_attempts (see `_resumes`).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import hashlib
import itertools
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import psycopg
import redis
from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backprop import Trainer, TrainSpec
from backprop.layout import Layout
from cli.services import Stack, free_port
from models import history
from models.datasets import dataset_arrays
from models.db import make_engine, session_factory
from models.status import TERMINAL, JobStatus
from models.tables import Batch, EpochChunk, Job, JobAttempt
from models.trials import Decision, Rung

T = TypeVar("T")
MAX_ATTEMPTS = 8
SETTINGS = {
    "DELTAFLOW_FLUSH_INTERVAL": "0.2",
    "DELTAFLOW_CHECKPOINT_INTERVAL": "0.5",
    "DELTAFLOW_LEASE_TTL": "2",
    "DELTAFLOW_REAPER_INTERVAL": "0.5",
    "DELTAFLOW_REPUBLISH_AFTER": "2",
    "DELTAFLOW_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "DELTAFLOW_BLAS_THREADS": "1",
}
JOB = {
    "network": {"layers": [2, 8, 1], "activation": "tanh"},
    "loss": "binary_cross_entropy",
    "optimizer": {"name": "momentum", "learning_rate": 0.05},
    "epochs": 1500,
    "batch_size": 10,
    "snapshot_every": 100,
    "dataset": {"builtin": "moons", "n": 100},
}
# Plain jobs cycle through SPECS specs (seed, epochs and optimizer vary), so that the
# uninterrupted runs they are compared with are computed once each however long the soak.
SPECS = 48
EPOCHS = [200, 400, 800, 1600]
OPTIMIZERS = [
    {"name": "momentum", "learning_rate": 0.05},
    {"name": "adam", "learning_rate": 0.01},
    {"name": "sgd", "learning_rate": 0.1},
]
TRIAL = JOB | {"name": "trial", "epochs": 1350, "snapshot_every": 50}
SPACE = {"optimizer.learning_rate": {"loguniform": [0.01, 0.2]}}
SCHEDULERS = {
    "asha": ({"name": "asha", "min_epochs": 50, "reduction_factor": 3}, 9),
    "pbt": ({"name": "pbt", "perturbation_interval": 450, "quantile_fraction": 0.5}, 4),
}
KILLED = ("worker", "worker", "worker", "worker", "worker", "worker", "reaper", "api")


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- servers of its own ----------------------------------------------------------------------


class RedisServer:
    """redis-server on a free port, no persistence: a restart starts it empty."""

    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.home)]  # fmt: skip
        with open(self.home / "redis.log", "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    def crash(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, down: float) -> None:
        self.crash()
        time.sleep(down)
        self.start()


class PostgresServer:
    """A PostgreSQL cluster in a temporary directory, trust auth, on a free port."""

    def __init__(self, home: Path) -> None:
        self.dir, self.port = home / "pg", free_port()
        self.data, self.logfile = self.dir / "data", self.dir / "server.log"
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=_version)
        if not found:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        self.bin = found[-1].parent
        self.owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/deltaflow"

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        done = subprocess.run([*self.owner, str(self.bin / tool), *args],
                              capture_output=True, text=True, timeout=180)  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {done.stdout}{done.stderr}")

    def _ctl(self, *args: str, check: bool = True) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options, *args,
                  check=check)  # fmt: skip

    def init(self) -> None:
        self.dir.mkdir()
        if self.owner:
            self.dir.parent.chmod(0o755)  # mkdtemp's 0700 would keep postgres out
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        self._ctl("-w", "start")
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE deltaflow")

    def restart(self) -> None:
        self._ctl("-m", "fast", "-w", "restart")

    def stop(self) -> None:
        self._ctl("-m", "immediate", "-w", "stop", check=False)


def _version(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in path.parent.parent.name.split(".") if p.isdigit())


class SoakStack(Stack):
    """tests/e2e/test_faults.py's FaultStack: a Celery worker gives up on a killed pool
    process's result after 1 s (worker_lost_wait, 10 s by default) before rejecting it."""

    def commands(self) -> dict[str, list[str]]:
        return {
            name: [*argv, "worker_lost_wait=1"] if name.startswith("worker-") else argv
            for name, argv in super().commands().items()
        }


# --- faults --------------------------------------------------------------------------------


@dataclass
class Kill:
    at: datetime  # just before the SIGKILL
    name: str  # worker-1, reaper, api
    pids: list[int]  # the worker's pool processes: the pids in job_attempts.worker


@dataclass
class Faults:
    """A thread that kills and restarts processes and servers, and restarts any process that
    exited on its own (counted as unexpected)."""

    stack: Stack
    rng: random.Random
    redis_server: RedisServer | None
    postgres: PostgresServer | None
    duration: float
    kills: list[Kill] = field(default_factory=list)
    redis_restarts: list[datetime] = field(default_factory=list)
    postgres_restarts: list[datetime] = field(default_factory=list)
    unexpected: list[tuple[str, int | None, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.faulting = threading.Event()
        self.faulting.set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="faults", daemon=True)
        self.workers = [n for n in self.stack.processes if n.startswith("worker-")]
        self.ours: set[int] = set()  # pids this thread killed

    def start(self) -> None:
        self.started = time.monotonic()
        self.thread.start()

    def stop_faults(self) -> None:
        self.faulting.clear()

    def stop(self) -> None:
        self.faulting.clear()
        self.done.set()
        self.thread.join(120)

    def _plan(self) -> list[tuple[float, str]]:
        """Service restarts: about one of each every two minutes, at least one, interleaved."""
        if self.redis_server is None:
            return []
        n = max(1, int(self.duration // 120))
        slot = self.duration / n
        plan = [(slot * (k + 0.3), "redis") for k in range(n)]
        plan += [(slot * (k + 0.7), "postgres") for k in range(n)]
        return sorted(plan)

    def _loop(self) -> None:
        plan = self._plan()
        next_kill = self.started + self.rng.uniform(2.0, 5.0)
        while not self.done.is_set():
            try:
                self._watch()
                now = time.monotonic()
                if self.faulting.is_set() and plan and now - self.started >= plan[0][0]:
                    self._restart_server(plan.pop(0)[1])
                elif self.faulting.is_set() and now >= next_kill:
                    self._kill(self._victim())
                    next_kill = time.monotonic() + self.rng.uniform(2.0, 5.0)
            except Exception as exc:  # reported; the soak goes on
                self.errors.append(f"{type(exc).__name__}: {exc}")
                log(f"fault thread: {type(exc).__name__}: {exc}")
            time.sleep(0.05)

    def _victim(self) -> str:
        kind = self.rng.choice(KILLED)
        return self.rng.choice(self.workers) if kind == "worker" else kind

    def _watch(self) -> None:
        """Restart a process that exited without being killed here."""
        for name, proc in list(self.stack.processes.items()):
            if proc.poll() is not None and proc.pid not in self.ours:
                tail = _tail(self.stack.log_dir / f"{name}.log") if self.stack.log_dir else ""
                self.unexpected.append((name, proc.returncode, tail))
                log(f"{name} exited by itself (code {proc.returncode}); restarting it")
                self._start(name)

    def _kill(self, name: str) -> None:
        proc = self.stack.processes[name]
        pool = _children(proc.pid) if name.startswith("worker-") else []
        at = datetime.now(UTC)
        self.ours.add(proc.pid)
        proc.send_signal(signal.SIGKILL)  # first: a live worker would replace its pool process
        for pid in pool:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        _wait_gone(pool)
        self.kills.append(Kill(at, name, pool))
        self._start(name)

    def _start(self, name: str) -> None:
        self.stack.start_process(name, self.stack.commands()[name])
        if name == "api":
            wait_ready(self.stack.url, 60)

    def _restart_server(self, which: str) -> None:
        at = datetime.now(UTC)
        if which == "redis":
            assert self.redis_server is not None
            log("restarting Redis (killed; it comes back empty)")
            self.redis_server.restart(down=self.rng.uniform(0.5, 2.0))
            self.redis_restarts.append(at)
        else:
            assert self.postgres is not None
            log("restarting PostgreSQL (pg_ctl restart -m fast)")
            self.postgres.restart()
            self.postgres_restarts.append(at)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    """Until the processes are gone (or zombies: an orphan's reaper may be slow or absent)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError, IndexError):
                break
            if state in ("Z", "X"):
                break
            time.sleep(0.02)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_ready(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{url}/readyz").status_code == 200:
                    return True
            time.sleep(0.1)
    return False


# --- the load ------------------------------------------------------------------------------


def plain_body(i: int) -> dict[str, Any]:
    k = i % SPECS
    return JOB | {"name": f"soak-{i}", "seed": k, "epochs": EPOCHS[k % len(EPOCHS)],
                  "optimizer": OPTIMIZERS[k % len(OPTIMIZERS)]}  # fmt: skip


def batch_body(kind: str, n: int) -> dict[str, Any]:
    scheduler, samples = SCHEDULERS[kind]
    return {"name": f"soak-{kind}-{n}", "base": TRIAL, "space": SPACE, "num_samples": samples,
            "seed": n, "scheduler": scheduler}  # fmt: skip


class Load:
    """Submits over HTTP (retrying through kills and restarts, each request with its own
    Idempotency-Key so that a retry never makes a second job) and reads progress with SQL."""

    def __init__(self, url: str, sessions, run: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        self.sessions, self.run = sessions, run
        self.plain = 0
        self.batches: dict[str, str] = {}  # id → asha | pbt
        self.current: dict[str, str] = {}  # kind → the batch now running
        self.made = Counter()

    def post(self, path: str, body: dict[str, Any], key: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                r = self.http.post(path, json=body, headers={"Idempotency-Key": key})
                if r.status_code in (200, 201):
                    return r.json()["id"]
                if r.status_code < 500:
                    raise RuntimeError(f"POST {path} answered {r.status_code}: {r.text}")
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"POST {path} did not get through in {timeout:.0f} s")
            time.sleep(0.3)

    def submit_plain(self) -> None:
        self.post("/v1/jobs", plain_body(self.plain), f"{self.run}-job-{self.plain}")
        self.plain += 1

    def submit_batch(self, kind: str) -> None:
        n = self.made[kind]
        batch_id = self.post("/v1/batches", batch_body(kind, n), f"{self.run}-{kind}-{n}")
        self.made[kind] += 1
        self.batches[batch_id] = kind
        self.current[kind] = batch_id

    def state(self) -> dict[str, Any] | None:
        """Jobs in all, plain jobs queued or running, and the batches with a job not ended;
        None while the database is unreachable."""
        ended = Job.status.in_(list(TERMINAL))
        active = Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])
        try:
            with self.sessions() as s:
                total = s.scalar(select(func.count()).select_from(Job)) or 0
                plain = s.scalar(
                    select(func.count()).where(Job.batch_id.is_(None), active).select_from(Job)
                )
                open_ = s.execute(
                    select(Job.batch_id)
                    .where(Job.batch_id.is_not(None))
                    .group_by(Job.batch_id)
                    .having(func.sum(case((ended, 0), else_=1)) > 0)
                ).scalars()
                return {"total": total, "plain": plain or 0, "open": {str(b) for b in open_}}
        except SQLAlchemyError:
            return None

    def drive(self, until: float, depth: int, min_jobs: int, duration: float) -> None:
        """Submit until `until`: new batches as the last ones end, plain jobs `depth` deep,
        and more when behind the pace to `min_jobs` jobs by 80 % of the run."""
        started = until - duration
        for kind in SCHEDULERS:
            self.submit_batch(kind)
        while (now := time.monotonic()) < until:
            state = self.state()
            if state is None:
                time.sleep(0.5)
                continue
            for kind, batch_id in list(self.current.items()):
                if batch_id not in state["open"] and until - now > 15:
                    self.submit_batch(kind)
            pace = math.ceil(min_jobs * min(1.0, (now - started) / (0.8 * duration)))
            more = max(depth - state["plain"], pace - state["total"], 0)
            for _ in range(min(more, 10)):
                self.submit_plain()
            time.sleep(0.25)

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        ended = Job.status.in_(list(TERMINAL))
        while time.monotonic() < deadline:
            with contextlib.suppress(SQLAlchemyError), self.sessions() as s:
                if s.scalar(select(func.count()).where(~ended).select_from(Job)) == 0:
                    return True
            time.sleep(0.5)
        return False


def retrying(action: Callable[[], T], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except SQLAlchemyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# --- the checks ----------------------------------------------------------------------------


@dataclass
class Report:
    jobs: Counter = field(default_factory=Counter)  # by status
    kinds: Counter = field(default_factory=Counter)  # plain, asha, pbt, pbt clone
    batches: Counter = field(default_factory=Counter)
    lost: int = 0
    duplicated: int = 0
    compared: int = 0
    identity_failures: int = 0
    decision_issues: int = 0
    attempt_issues: int = 0
    unterminated: int = 0
    unexpected_ends: int = 0
    resumes_fault: int = 0
    resumes_checkpoint: int = 0
    resumes_pause: int = 0
    attempts_beyond_first: int = 0
    resume_delays: list[float] = field(default_factory=list)
    detect_delays: list[float] = field(default_factory=list)  # kill → the attempt ended
    resumed: list[tuple[float, str]] = field(default_factory=list)  # the kill-to-resume cases
    asha_over_kept: list[str] = field(default_factory=list)  # rungs ASHA kept > ⌈n/η⌉ of
    claim_gap: tuple[float, datetime, datetime] | None = None
    kills_hitting_jobs: int = 0
    not_resumed: int = 0
    details: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.details) < 200:
            self.details.append(text)


def check(sessions, kills: list[Kill]) -> Report:
    report = Report()
    with sessions() as s:
        jobs = s.scalars(select(Job).order_by(Job.created_at)).all()
        batches = {b.id: b for b in s.scalars(select(Batch))}
        attempts: dict[uuid.UUID, list[JobAttempt]] = defaultdict(list)
        for a in s.scalars(select(JobAttempt).order_by(JobAttempt.job_id, JobAttempt.attempt)):
            attempts[a.job_id].append(a)
        spans: dict[uuid.UUID, list[tuple[int, int]]] = defaultdict(list)
        for job_id, first, last in s.execute(
            select(EpochChunk.job_id, EpochChunk.first_epoch, EpochChunk.last_epoch)
        ):
            spans[job_id].append((first, last))
        for job in jobs:
            _check_job(report, job, batches, attempts[job.id], spans[job.id])
        starts = sorted(_utc(a.started_at) for group in attempts.values() for a in group)
        gaps = [((b - a).total_seconds(), a, b) for a, b in itertools.pairwise(starts)]
        report.claim_gap = max(gaps) if gaps else None
        for batch in batches.values():
            report.batches[batch.scheduler.get("name", "fifo")] += 1
            _check_decisions(s, report, batch, [j for j in jobs if j.batch_id == batch.id])
        _check_identity(s, report, [j for j in jobs if j.parent_id is None])
    _resumes(report, attempts, kills)
    return report


def _check_job(report: Report, job: Job, batches, attempts: list[JobAttempt], spans) -> None:
    report.jobs[str(job.status)] += 1
    kind = batches[job.batch_id].scheduler.get("name", "fifo") if job.batch_id else "plain"
    report.kinds[f"{kind} clone" if job.parent_id else kind] += 1
    if job.status not in TERMINAL:
        report.unterminated += 1
        report.problem(f"job {job.id} is still {job.status}")
    elif job.status not in (JobStatus.SUCCEEDED, JobStatus.STOPPED):
        report.unexpected_ends += 1
        report.problem(f"job {job.id} ended {job.status}: {job.error}")
    if job.attempt > MAX_ATTEMPTS:
        report.attempt_issues += 1
        report.problem(f"job {job.id} used {job.attempt} attempts")
    for earlier, later in itertools.pairwise(attempts):
        if earlier.ended_at is None or earlier.ended_at > later.started_at:
            report.attempt_issues += 1
            report.problem(f"job {job.id}: attempts {earlier.attempt} and {later.attempt} overlap")
    if attempts and attempts[-1].ended_at is None:
        report.attempt_issues += 1
        report.problem(f"job {job.id}: attempt {attempts[-1].attempt} never ended")
    # A job's own epochs: a fork's (a PBT clone's) start after the epoch it was forked at.
    stored = Counter(e for first, last in spans for e in range(first, last + 1))
    first = (job.forked_at_epoch or 0) + 1
    done = job.epochs_total if job.status == JobStatus.SUCCEEDED else job.epochs_done
    expected = range(first, max(done, job.epochs_done) + 1)
    lost = [e for e in expected if e not in stored]
    extra = sum(n - 1 for n in stored.values()) + sum(
        1 for e in stored if not first <= e <= job.epochs_done
    )
    if lost:
        report.lost += len(lost)
        report.problem(f"job {job.id} ({job.status}): {len(lost)} epochs missing, from {lost[0]}")
    if extra:
        report.duplicated += extra
        twice = sorted(e for e, n in stored.items() if n > 1)[:5]
        report.problem(f"job {job.id}: {extra} epochs stored twice or past epochs_done: {twice}")


def _check_decisions(s, report: Report, batch: Batch, jobs: list[Job]) -> None:
    def issue(text: str) -> None:
        report.decision_issues += 1
        report.problem(f"batch {batch.id} ({batch.scheduler['name']}): {text}")

    log_ = s.scalars(select(Decision).where(Decision.batch_id == batch.id)).all()
    rungs = s.scalars(select(Rung).where(Rung.batch_id == batch.id)).all()
    promoted = Counter((d.job_id, d.rung) for d in log_ if d.action == "promoted")
    for key, n in promoted.items():
        if n > 1:
            issue(f"job {key[0]} promoted {n} times from rung {key[1]}")
    marked = {(r.job_id, r.rung) for r in rungs if r.promoted}
    for key in marked ^ set(promoted):
        issue(f"job {key[0]} rung {key[1]}: the rung row and the decisions disagree on promotion")
    stopped = Counter(d.job_id for d in log_ if d.action == "stopped")
    for job_id, n in stopped.items():
        if n > 1:
            issue(f"job {job_id} has {n} stopped decisions")
    for job_id in set(stopped) ^ {j.id for j in jobs if j.status == JobStatus.STOPPED}:
        issue(f"job {job_id}: stopped status without one stopped decision, or the reverse")
    paused = Counter((d.job_id, d.rung) for d in log_ if d.action == "paused")
    for key, n in paused.items():
        if n > 1:
            issue(f"job {key[0]} paused {n} times at rung {key[1]}")
    name = batch.scheduler["name"]
    if name in ("asha", "sha", "hyperband") and all(j.status in TERMINAL for j in jobs):
        eta = batch.scheduler.get("reduction_factor", 3 if name == "hyperband" else 4)
        per_rung = Counter((r.bracket, r.rung) for r in rungs)
        kept = Counter((r.bracket, r.rung) for r in rungs if r.promoted)
        top = {b: max(r for bb, r in per_rung if bb == b) for b, _ in per_rung}
        if name == "asha":
            n_rungs = len(milestones(batch.scheduler.get("min_epochs", 1), jobs[0].epochs_total,
                                     eta))  # fmt: skip
            top = {0: n_rungs}  # the rows at n_rungs are the final values of trials that ended
            open_kept = _asha_replay(issue, jobs, log_, rungs, n_rungs, eta)
        for (b, r), n in sorted(per_rung.items()):
            if r >= top[b]:
                continue
            # A closed rung keeps ⌈n/η⌉; ASHA's asynchronous rule promotes a trial as soon as it
            # is in the top ⌊k/η⌋ of the k that reached the rung, so promotions made while it
            # was open may already be more than that, and are kept (Li et al. 2018).
            want = math.ceil(n / eta)
            if name == "asha":
                if open_kept[r] > want:
                    report.asha_over_kept.append(f"batch {batch.id} rung {r}: {kept[b, r]} of {n}")
                want = max(want, open_kept[r])
            if kept[b, r] != want:
                issue(f"bracket {b} rung {r}: {n} reached it, {kept[b, r]} went on, not {want} "
                      f"(⌈{n}/{eta}⌉ = {math.ceil(n / eta)})")  # fmt: skip
    if name == "pbt":
        cloned = Counter(d.job_id for d in log_ if d.action == "cloned")
        clones = {j.id for j in jobs if j.parent_id is not None}
        for job_id in clones ^ set(cloned):
            issue(f"job {job_id}: a clone without its cloned decision, or the reverse")
        for job_id, n in cloned.items():
            if n > 1:
                issue(f"job {job_id} has {n} cloned decisions")


def milestones(first: int, max_epochs: int, eta: int) -> list[int]:
    """A halving bracket's rungs: first · η^i below max_epochs."""
    out = []
    while first < max_epochs:
        out.append(first)
        first *= eta
    return out


def _asha_replay(issue, jobs, log_, rungs, n_rungs: int, eta: int) -> list[int]:
    """ASHA's promotions replayed from the decision log: each trial's arrival at a rung is its
    paused decision (written with its rung row, and the batch settled, in one transaction under
    the batch's lock, so the log's order is the order of the arrivals), and after each the
    rule is applied to every rung: open, promote the waiting trials among the top ⌊k/η⌋ of the
    k arrived; closed (every entrant arrived), promote waiting trials, best first, until ⌈k/η⌉
    went on, and stop the rest. Any promoted trial other than the replay's is an issue.
    Returns, per rung, how many the replay promoted while the rung was open."""
    value = {(r.trial, r.rung): r.value for r in rungs}
    arrived: list[dict[int, float | None]] = [{} for _ in range(n_rungs)]
    promoted: list[set[int]] = [set() for _ in range(n_rungs)]
    decided: list[set[int]] = [set() for _ in range(n_rungs)]
    while_open = [0] * n_rungs
    for d in sorted(log_, key=lambda d: d.id):
        if d.action != "paused" or d.rung is None or d.rung >= n_rungs:
            continue
        arrived[d.rung][d.trial] = value.get((d.trial, d.rung))
        closed, entrants = True, {j.trial for j in jobs}
        for r in range(n_rungs):
            closed = closed and entrants <= arrived[r].keys()
            order = sorted(arrived[r], key=lambda t, r=r: _ranked(arrived[r][t], t))
            waiting = [t for t in order if t not in decided[r]]
            if closed:
                up = waiting[: max(math.ceil(len(order) / eta) - len(promoted[r]), 0)]
                decided[r] |= set(waiting)
            else:
                best = set(order[: len(order) // eta])
                up = [t for t in waiting if t in best]
                decided[r] |= set(up)
                while_open[r] += len(up)
            promoted[r] |= set(up)
            entrants = set(promoted[r])
    actual: list[set[int]] = [set() for _ in range(n_rungs)]
    for d in log_:
        if d.action == "promoted" and d.rung is not None and d.rung < n_rungs:
            actual[d.rung].add(d.trial)
    for r in range(n_rungs):
        if actual[r] != promoted[r]:
            issue(f"rung {r}: trials {sorted(actual[r])} promoted, the ASHA rule replayed "
                  f"from the log promotes {sorted(promoted[r])}")  # fmt: skip
    return while_open


def _ranked(value: float | None, trial: int) -> tuple[bool, float, int]:
    """Best first for a loss: a missing or non-finite value last, ties by trial index."""
    bad = value is None or not math.isfinite(value)
    return bad, 0.0 if bad or value is None else value, trial


def _check_identity(s, report: Report, jobs: list[Job]) -> None:
    """Each succeeded or stopped job that is no clone, at its last epoch, against an
    uninterrupted run of its spec; one run per spec and data set, to the latest epoch needed."""
    wanted: dict[tuple[str, uuid.UUID], list[Job]] = defaultdict(list)
    for job in jobs:
        if job.status in (JobStatus.SUCCEEDED, JobStatus.STOPPED) and job.epochs_done > 0:
            key = hashlib.sha256(json.dumps(job.spec, sort_keys=True).encode()).hexdigest()
            wanted[key, job.dataset_id].append(job)
    data: dict[uuid.UUID, tuple[np.ndarray, np.ndarray]] = {}
    with threadpool_limits(1, user_api="blas"):
        for (_, dataset_id), group in wanted.items():
            if dataset_id not in data:
                data[dataset_id] = dataset_arrays(s, dataset_id)
            spec = group[0].spec
            states = uninterrupted(spec, *data[dataset_id], {j.epochs_done for j in group})
            for job in group:
                report.compared += 1
                got = stored_parameters(s, job)
                if got is None:
                    report.identity_failures += 1
                    report.problem(f"job {job.id} ({job.status}): no snapshot at its last epoch "
                                   f"{job.epochs_done}")  # fmt: skip
                elif got != states[job.epochs_done]:
                    report.identity_failures += 1
                    differ = [i for i, (a, b) in enumerate(zip(got, states[job.epochs_done],
                                                               strict=True)) if a != b]  # fmt: skip
                    shown = json.dumps(spec, sort_keys=True)
                    report.problem(
                        f"job {job.id} ({job.status}, epoch {job.epochs_done}, spec {shown}): "
                        f"parameters differ from an uninterrupted run (arrays {differ} of W…, b…)"
                    )


def uninterrupted(spec: dict, x, y, epochs: set[int]) -> dict[int, list[bytes]]:
    """W^1 … W^L, b^1 … b^L as bytes after each of `epochs` of one run of `spec`."""
    trainer = Trainer(TrainSpec.model_validate(spec), x, y)
    out: dict[int, list[bytes]] = {}
    last = max(epochs)
    for result in trainer.epochs():
        if result.epoch in epochs:
            out[result.epoch] = [a.tobytes() for a in trainer.weights + trainer.biases]
        if result.epoch >= last:
            break
    return out


def stored_parameters(s, job: Job) -> list[bytes] | None:
    try:
        dtype = np.dtype(job.spec.get("dtype", "float64"))
        _, theta = history.snapshot(s, job.id, job.epochs_done, dtype)
    except KeyError:
        return None
    Ws, bs = Layout(job.spec["network"]["layers"]).split(theta)
    return [a.copy().tobytes() for a in Ws + bs]


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _hms(t: datetime) -> str:
    return f"{_utc(t):%H:%M:%S.%f}"[:-3]


def _pid(lease_id: str) -> int | None:
    """The pool process of a job_attempts.worker: "<hostname>:<pid>:<random>"."""
    parts = lease_id.rsplit(":", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _resumes(report: Report, attempts: dict[uuid.UUID, list[JobAttempt]], kills) -> None:
    """Resumes counted from job_attempts, and kill-to-resume times.

    A kill-to-resume time is measured for each attempt that was open when its pool process
    was SIGKILLed: the attempt row names the process (`worker` is "<host>:<pid>:<random>",
    the pid of the pool process that claimed it, which the soak recorded when it killed it),
    it started before the kill and ended after it — when the reaper found its lease expired
    (or the next claim did). Two times, from the kill (the soak's clock, just before the
    signal; one machine, one clock for every timestamp):
    - to that attempt's ended_at: the lease running out (2 s after its last renewal) and the
      reaper's next pass (0.5 s), which requeues the job and publishes it;
    - to the next attempt's started_at, the resume: that, plus the wait for a worker. The
      job's new message goes to the back of the queue, behind the plain jobs and trials queued
      meanwhile, so this is mostly the backlog's length (the claims of other jobs in between
      are counted); a PostgreSQL or Redis restart or a reaper kill in between adds to it.
    Kills of the API and the reaper hold no job and are not measured.
    """
    starts = sorted(_utc(a.started_at) for group in attempts.values() for a in group)
    by_pid: dict[int, list[Kill]] = defaultdict(list)
    for kill in kills:
        for pid in kill.pids:
            by_pid[pid].append(kill)
    for job_attempts in attempts.values():
        for i, a in enumerate(job_attempts):
            if i > 0:
                report.attempts_beyond_first += 1
                before = job_attempts[i - 1].reason or ""
                if before == JobStatus.PAUSED:
                    report.resumes_pause += 1
                elif before.startswith(("lease expired", "released")):
                    report.resumes_fault += 1
                    report.resumes_checkpoint += a.start_epoch > 0
            pid = _pid(a.worker)
            for kill in by_pid.get(pid, []) if pid is not None else []:
                open_at_kill = _utc(a.started_at) <= kill.at and (
                    a.ended_at is None or _utc(a.ended_at) >= kill.at
                )
                if not open_at_kill:
                    continue
                report.kills_hitting_jobs += 1
                if a.ended_at is not None:
                    report.detect_delays.append((_utc(a.ended_at) - kill.at).total_seconds())
                if i + 1 >= len(job_attempts):
                    report.not_resumed += 1
                    report.problem(f"job {a.job_id}: attempt {a.attempt} was killed at "
                                   f"{_hms(kill.at)} and never resumed")  # fmt: skip
                    continue
                after = job_attempts[i + 1]
                delay = (_utc(after.started_at) - kill.at).total_seconds()
                report.resume_delays.append(delay)
                ended = _hms(a.ended_at) if a.ended_at else "never"
                others = bisect.bisect_left(starts, _utc(after.started_at)) - bisect.bisect_right(
                    starts, _utc(a.ended_at or kill.at)
                )
                report.resumed.append((delay, (
                    f"job {a.job_id}: attempt {a.attempt} killed with {kill.name} at "
                    f"{_hms(kill.at)}, ended {ended} ({a.reason}); attempt {after.attempt} "
                    f"started {_hms(after.started_at)} on {after.worker}, after {others} "
                    "claims of other jobs"
                )))  # fmt: skip


# --- the run -------------------------------------------------------------------------------


def ok(good: bool) -> str:
    return "ok" if good else "**FAIL**"


def summary(args, report: Report, faults: Faults, elapsed: float) -> list[str]:
    kills = Counter(k.name.split("-")[0] for k in faults.kills)
    delays, detect = sorted(report.resume_delays), sorted(report.detect_delays)
    worst = "— (no kill landed on a running job)"
    if delays:
        worst = (f"{delays[-1]:.2f} s (median {statistics.median(delays):.2f} s, "
                 f"{len(delays)} killed attempts)")  # fmt: skip
    if detect:
        worst += (f"; kill → lease found expired and the job requeued: worst {detect[-1]:.2f} s, "
                  f"median {statistics.median(detect):.2f} s")  # fmt: skip
    over = ""
    if report.asha_over_kept:
        over = (f" (ASHA rungs that kept more than ⌈n/η⌉, as its asynchronous rule does, each "
                f"as replayed: {len(report.asha_over_kept)})")  # fmt: skip
    gap = "—"
    if report.claim_gap:
        seconds, a, b = report.claim_gap
        gap = f"{seconds:.2f} s ({_hms(a)} → {_hms(b)})"
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(report.jobs.items()))
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(report.kinds.items()))
    restarts = args.setup != "embedded"
    rows = [
        ("set-up", f"{args.setup}, {args.workers} workers, {elapsed / 60:.1f} min of faults", ""),
        ("jobs", f"{sum(report.jobs.values())} ({kinds}); {statuses}",
         ok(sum(report.jobs.values()) >= args.min_jobs)),
        ("batches", ", ".join(f"{k} {v}" for k, v in sorted(report.batches.items())),
         ok(report.batches["asha"] >= 1 and report.batches["pbt"] >= 1)),
        ("kills (SIGKILL, restarted)",
         f"{sum(kills.values())}: worker {kills['worker']}, reaper {kills['reaper']}, "
         f"api {kills['api']}; {report.kills_hitting_jobs} hit a running job",
         ok(kills["worker"] >= 1)),
        ("Redis restarts", str(len(faults.redis_restarts)),
         ok(len(faults.redis_restarts) >= 1) if restarts else ""),
        ("PostgreSQL restarts", str(len(faults.postgres_restarts)),
         ok(len(faults.postgres_restarts) >= 1) if restarts else ""),
        ("resumes", f"{report.resumes_fault} after a kill or lease expiry "
         f"({report.resumes_checkpoint} from a checkpoint, start_epoch > 0), "
         f"{report.resumes_pause} after a scheduler pause; "
         f"{report.attempts_beyond_first} attempts beyond the first", ""),
        ("jobs not terminal", str(report.unterminated), ok(report.unterminated == 0)),
        ("jobs failed or cancelled", str(report.unexpected_ends), ok(report.unexpected_ends == 0)),
        ("lost (epochs missing)", str(report.lost), ok(report.lost == 0)),
        ("duplicated (epochs stored twice)", str(report.duplicated), ok(report.duplicated == 0)),
        ("bit-identity failures", f"{report.identity_failures} of {report.compared} compared",
         ok(report.identity_failures == 0)),
        ("decision-log inconsistencies", str(report.decision_issues) + over,
         ok(report.decision_issues == 0)),
        ("attempts overlapping, open or over max", str(report.attempt_issues),
         ok(report.attempt_issues == 0)),
        ("killed attempts never resumed", str(report.not_resumed), ok(report.not_resumed == 0)),
        ("worst kill-to-resume", worst, ""),
        ("longest gap between two claims", gap, ""),
        ("processes that exited by themselves", str(len(faults.unexpected)), ""),
    ]  # fmt: skip
    lines = ["| check | value | |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--setup", choices=["postgresql+redis", "embedded"],
                        default="postgresql+redis")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--min-jobs", type=int, default=100)
    parser.add_argument("--depth", type=int, default=6, help="plain jobs kept queued or running")
    parser.add_argument("--drain", type=float, default=300.0, help="seconds to wait at the end")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.workers < 2:
        parser.error("--workers must be at least 2")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)
    home = Path(tempfile.mkdtemp(prefix="deltaflow-soak-"))
    log(f"seed {seed}; files in {home}")
    redis_server = postgres = None
    stack: Stack | None = None
    faults: Faults | None = None
    failed = True
    try:
        env = dict(SETTINGS)
        if args.setup == "embedded":
            env["DELTAFLOW_DATABASE_URL"] = f"sqlite:///{home}/deltaflow.db"
        else:
            redis_server, postgres = RedisServer(home), PostgresServer(home)
            redis_server.start()
            postgres.init()
            env["DELTAFLOW_DATABASE_URL"] = postgres.url
            env["DELTAFLOW_BROKER_URL"] = redis_server.url
        stack = SoakStack(port=free_port(), workers=args.workers, env=env, log_dir=home / "logs")
        for name in [k for k in stack.env if k.upper().startswith("DELTAFLOW_")]:
            if name not in env:  # nothing of the caller's environment changes the set-up
                del stack.env[name]
        stack.start()
        log(f"service up at {stack.url} ({args.setup}, {args.workers} workers)")
        engine = make_engine(env["DELTAFLOW_DATABASE_URL"])
        sessions = session_factory(engine)
        duration = args.minutes * 60
        faults = Faults(stack, rng, redis_server, postgres, duration)
        load = Load(stack.url, sessions, f"soak-{uuid.uuid4().hex[:8]}")
        faults.start()
        started = time.monotonic()
        load.drive(started + duration, args.depth, args.min_jobs, duration)
        elapsed = time.monotonic() - started
        faults.stop_faults()
        log(f"faults over after {elapsed:.0f} s; waiting for every job to end")
        drained = load.drain(args.drain)
        if not drained:
            log(f"jobs still not ended after {args.drain:.0f} s")
        faults.stop()
        stack.stop()
        log("service stopped; checking")
        report = retrying(lambda: check(sessions, faults.kills))
        engine.dispose()
        lines = summary(args, report, faults, elapsed)
        print("\n".join(lines))
        failed = "**FAIL**" in "\n".join(lines)
        for text in report.details:
            print(f"- {text}")
        for text in report.asha_over_kept:
            print(f"- ASHA kept more than ⌈n/η⌉ (promoted while the rung was open): {text}")
        for delay, text in sorted(report.resumed, reverse=True)[:3]:
            print(f"- slowest kill-to-resume, {delay:.2f} s: {text}")
        for name, code, tail in faults.unexpected:
            print(f"- {name} exited by itself (code {code}); its log ended:\n{tail}")
        for text in faults.errors:
            print(f"- fault thread: {text}")
        print(f"seed {seed}; {'FAILED' if failed else 'passed'}")
    finally:
        if faults is not None:
            faults.stop()
        if stack is not None:
            stack.stop()
        if redis_server is not None:
            redis_server.crash()
        if postgres is not None:
            postgres.stop()
        if args.keep or failed:
            log(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
