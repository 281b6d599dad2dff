"""A deep queue: what the reaper sends, and what its passes cost, while a backlog waits.

    python bench/backlog.py [--minutes 10] [--batches 10] [--epochs 20000] [--lose 0]
                            [--setups embedded,postgresql+redis]

For each set-up a real service (uvicorn API, 2 Celery worker processes; `cli.services.Stack`)
is given `--batches` batches of 1,000 XOR 2-4-1 jobs over HTTP, each of `--epochs` epochs so
that the workers stay far behind, and runs for `--minutes` from the first submit. The reaper is
the real one (worker/reaper.py's `run_pass`, with the default interval and republish grace)
run in this process instead of its own, so that every pass is timed. Printed: jobs queued;
messages published by the API (one per job it created) and by the reaper, and their sum over
the jobs (target ≤ 1.1); deliveries that found nothing to claim (the workers' "nothing to
claim" lines); the broker's side of the count — claims (attempt rows), those deliveries, and
the messages still waiting at the end, which sum to what was published if nothing was lost;
jobs finished; reaper passes and their duration, p50, p99 and max (target ≤ 1 s), and the
longest once the batches were in (before, passes share the databases with the API storing and
publishing them). `--lose K` deletes the K messages next in line from the broker once the
batches are in, as a broker losing them would: the reaper should send K more, and its passes
stay within the target meanwhile.
PostgreSQL and Redis are expected on 127.0.0.1 (a fresh database and Redis index are used).
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import redis
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.setups import SETUPS, environment
from cli.services import Stack, free_port
from models.db import make_engine, session_factory
from models.status import TERMINAL
from models.tables import Job, JobAttempt
from settings import Settings
from worker.celery_app import QUEUE, make_celery, queue_length, release_broker
from worker.metrics import Recorder
from worker.reaper import Deficit, run_pass

POINTS = 1000  # jobs per batch: DELTAFLOW_MAX_GRID_POINTS' default
BASE = {
    "name": "backlog",
    "network": {"layers": [2, 4, 1]},
    "optimizer": {"learning_rate": 2.0},
    "dataset": {"builtin": "xor"},
    "snapshot_every": 1000,
}
NOT_CLAIMED = re.compile(rb"nothing to claim")
UNSENT = re.compile(rb"publishing failed after (\d+) of (\d+) job")


class WithoutReaper(Stack):
    """The service's processes but the reaper, which the benchmark runs itself, timed."""

    def commands(self) -> dict[str, list[str]]:
        return {k: v for k, v in super().commands().items() if k != "reaper"}


class Reaper(threading.Thread):
    """worker.reaper's loop in a thread: each pass's duration and what it did are kept."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="reaper", daemon=True)
        self.settings, self.stop = settings, threading.Event()
        self.seconds: list[float] = []
        self.started: list[float] = []  # time.monotonic() at each pass's start
        self.done: Counter = Counter()

    def run(self) -> None:
        engine = make_engine(self.settings.database_url)
        app = make_celery(self.settings)
        deficit = Deficit(self.settings.republish_after)
        sessions, recorder = session_factory(engine), Recorder("reaper")
        try:
            while not self.stop.is_set():
                self.started.append(time.monotonic())
                done, seconds = run_pass(sessions, app, self.settings, deficit, recorder)
                self.done.update(done)
                self.seconds.append(seconds)
                self.stop.wait(self.settings.reaper_interval)
        finally:
            release_broker(app, self.settings)
            engine.dispose()


def submit(client: httpx.Client, url: str, batches: int, epochs: int) -> int:
    """The batches over HTTP; returns the jobs created (the API publishes one message each)."""
    created = 0
    for i in range(batches):
        grid = {"seed": list(range(i * POINTS, (i + 1) * POINTS))}
        body = {"name": f"backlog {i}", "base": BASE | {"epochs": epochs}, "grid": grid}
        r = client.post(f"{url}/v1/batches", json=body, timeout=600)
        r.raise_for_status()
        created += len(r.json()["job_ids"])
    return created


def lose(settings: Settings, k: int) -> int:
    """Delete the `k` messages a worker would take next; returns how many there were."""
    if settings.embedded_broker:
        with sqlite3.connect(settings.broker_file, timeout=30) as db:
            oldest = "SELECT id FROM kombu_message WHERE visible = 1 ORDER BY timestamp, id LIMIT ?"
            return db.execute(f"DELETE FROM kombu_message WHERE id IN ({oldest})", (k,)).rowcount
    client = redis.Redis.from_url(settings.broker_url or "")
    try:
        return len(client.rpop(QUEUE, k) or [])  # Celery's consumer pops from the right
    finally:
        client.close()


def database_counts(settings: Settings) -> tuple[int, int]:
    """(claims, jobs finished), from the attempt rows and the jobs' statuses."""
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as s:
            claims = s.scalar(select(func.count()).select_from(JobAttempt)) or 0
            done = s.scalar(select(func.count()).where(Job.status.in_(TERMINAL))) or 0
    finally:
        engine.dispose()
    return claims, done


def not_claimed(logs: Path) -> int:
    return sum(len(NOT_CLAIMED.findall(f.read_bytes())) for f in logs.glob("worker-*.log"))


def unsent(logs: Path) -> int:
    """Messages the API could not publish (it unmarks those jobs; the reaper sends them)."""
    found = UNSENT.findall((logs / "api.log").read_bytes())
    return sum(int(total) - int(sent) for sent, total in found)


def waiting(settings: Settings) -> int:
    app = make_celery(settings)
    try:
        return queue_length(app)
    finally:
        release_broker(app, settings)


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run_setup(name: str, env: dict[str, str], args: argparse.Namespace, home: Path) -> list[str]:
    settings = Settings(**{k.removeprefix("DELTAFLOW_").lower(): v for k, v in env.items()})
    stack = WithoutReaper(port=free_port(), workers=2, env=env, log_dir=home / "logs")
    stack.start()
    reaper = Reaper(settings)
    try:
        started = time.monotonic()
        reaper.start()
        with httpx.Client() as client:
            queued = submit(client, stack.url, args.batches, args.epochs)
        submitted_at = time.monotonic()
        submitted = submitted_at - started
        lost = lose(settings, args.lose) if args.lose else 0
        time.sleep(max(args.minutes * 60 - (time.monotonic() - started), 0))
    finally:
        reaper.stop.set()
        reaper.join()
        stack.stop()
    claims, finished = database_counts(settings)
    left, idle = waiting(settings), not_claimed(home / "logs")
    by_api, republished = queued - unsent(home / "logs"), reaper.done["republished"]
    p = reaper.seconds
    after = [s for at, s in zip(reaper.started, p, strict=True) if at > submitted_at] or [0.0]
    return [
        name, f"{queued:,} ({submitted:.0f} s)", f"{lost:,}", f"{by_api:,}", f"{republished:,}",
        f"{(by_api + republished) / queued:.3f}", f"{idle:,}",
        f"{claims:,} + {idle:,} + {left:,} = {claims + idle + left:,}",
        f"{finished:,}", f"{len(p)}",
        f"{statistics.median(p) * 1e3:.0f} / {percentile(p, 99) * 1e3:.0f} / {max(p) * 1e3:.0f} ms",
        f"{max(after) * 1e3:.0f} ms",
    ]  # fmt: skip


HEADER = [
    "set-up", "jobs queued (submit time)", "lost (--lose)", "published by the API",
    "by the reaper", "÷ jobs queued", "nothing to claim", "claims + nothing + waiting",
    "finished", "passes", "pass p50 / p99 / max", "max once submitted",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20_000)
    parser.add_argument("--lose", type=int, default=0)
    parser.add_argument("--setups", default=",".join(SETUPS))
    args = parser.parse_args()
    rows = []
    for setup in args.setups.split(","):
        with tempfile.TemporaryDirectory() as tmp, environment(setup, Path(tmp)) as env:
            rows.append(run_setup(setup, env, args, Path(tmp)))
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
