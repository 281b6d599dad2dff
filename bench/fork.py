"""Forks (issue 13): a fork's API time, its first epoch, its history, the state kept per job.

What a fork costs the API, how soon it trains, reading its history, and the state kept per job
so that any stored epoch can be forked:

    python bench/fork.py [--runs 5] [--posts 20] [--repeat 20] [--setups postgresql+redis,embedded]

On each set-up (`bench.setups`, a real service through `cli.services.Stack`), after training two
784-256-128-10 parents on 20,000 samples (sgd and adam, 30 epochs, a snapshot every epoch, the
default checkpoint interval) and an XOR 2-4-1 parent for 100,000 epochs (a snapshot every 10):

- (a) `POST /v1/jobs/{id}/fork` of the finished sgd parent over HTTP, to an API with no worker
  running (nothing competes with it), median of `--posts`: at its last epoch, at a middle one,
  and next to `POST /v1/jobs` of the same spec (the data by id).
- (b) from just before the POST to its answer, to the child's claim (`started_at`) and to its
  first stored epoch (`epochs_done` past the fork epoch, polled every 20 ms), one worker,
  median of `--runs`, the cases interleaved:
  forks of the sgd parent at its last and a middle epoch and of the adam one at its last, each
  trained 2 epochs more, next to a new job of the same spec and 2 epochs.
- (c) a fork of the XOR parent at epoch 50,000 trained to 100,000 (no overrides), and the parent
  itself: the whole history, `GET /v1/jobs/{id}/epochs?format=columns&limit=100000` (as
  bench/history.py reads it), a 500-point downsample, and one weight's trajectory; median of
  `--repeat`. The fork's losses are checked against the parent's, bit for bit.
- (d) the state kept per job, read from the database with SQL: snapshots (`snapshot_chunks`,
  sum(length(parameters))) and checkpoints — the keyframes a fork restores from, every one kept
  (`checkpoints`, sum(length(arrays)) and of `meta`) — per job, per snapshot, per checkpoint.

PostgreSQL and Redis are expected on 127.0.0.1 (a fresh database and Redis index are used).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Text, cast, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.history import median_ms
from bench.service import big_dataset, wait
from bench.setups import environment
from cli.services import Stack, free_port
from models.db import make_engine, session_factory
from models.tables import Checkpoint, SnapshotChunk

BIG_EPOCHS = 30
BIG = {
    "network": {"layers": [784, 256, 128, 10], "output_activation": "softmax"},
    "loss": "cross_entropy",
    "epochs": BIG_EPOCHS,
    "batch_size": 128,
}
OPTIMIZERS = {
    "sgd": {"name": "sgd", "learning_rate": 0.1},
    "adam": {"name": "adam", "learning_rate": 0.001},
}
XOR = {
    "network": {"layers": [2, 4, 1]},
    "optimizer": {"learning_rate": 2.0},
    "epochs": 100_000,
    "snapshot_every": 10,
    "dataset": {"builtin": "xor"},
}
XOR_FORK_AT = 50_000
OWN_EPOCHS = 2  # what each fork of (b) trains past its fork epoch
HTTP = httpx.Client(timeout=120)


def post(url: str, path: str, body: dict) -> dict:
    answer = HTTP.post(f"{url}{path}", json=body)
    if answer.status_code != 201:
        raise RuntimeError(f"POST {path} answered {answer.status_code}: {answer.text}")
    return answer.json()


def fork_body(epoch: int | None, to: int) -> dict:
    return {"epoch": epoch, "overrides": {"epochs": to}}


def middle_epoch(frames: list[int]) -> int:
    """An epoch near the middle that is no keyframe, so a fork at it replays epochs."""
    epoch = BIG_EPOCHS // 2
    while epoch in frames:
        epoch += 1
    return epoch


def replay_note(epoch: int, frames: list[int]) -> str:
    nearest = max((f for f in frames if f <= epoch), default=None)
    start = "the initial state" if nearest is None else f"keyframe {nearest}"
    return f"{start}, {epoch - (nearest or 0)} epoch(s) replayed"


def first_stored(url: str, path: str, body: dict) -> tuple[tuple[float, float, float], str]:
    """Seconds from just before one POST to its answer, to the job's claim and to its first
    stored epoch; and the job's id. Waits for the job to end, so the next run meets an idle
    worker."""
    sent, started = datetime.now(UTC), time.perf_counter()
    job = post(url, path, body)
    answered = time.perf_counter() - started
    start = job.get("forked_at_epoch") or 0
    while job["epochs_done"] <= start:
        if job["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"job {job['id']} ended {job['status']}: {job['error']}")
        time.sleep(0.02)
        job = HTTP.get(f"{url}/v1/jobs/{job['id']}").json()
    stored = time.perf_counter() - started
    claimed = (datetime.fromisoformat(job["started_at"]) - sent).total_seconds()
    wait(url, job["id"], poll=0.25)
    return (answered, claimed, stored), job["id"]


def history_reads(url: str, job_id: str, repeat: int) -> dict[str, float]:
    path = f"{url}/v1/jobs/{job_id}"
    return {
        "100,000 epochs, every field, format=columns": median_ms(
            HTTP, f"{path}/epochs", {"format": "columns", "limit": 100_000}, repeat
        ),
        "500-point downsample of it": median_ms(
            HTTP, f"{path}/epochs", {"format": "columns", "points": 500}, repeat
        ),
        "w^1_{2,1} over 10,001 snapshots": median_ms(
            HTTP, f"{path}/trajectory", {"layer": 1, "param": "weight", "k": 2, "j": 1}, repeat
        ),
    }


def losses(url: str, job_id: str) -> list[float]:
    query = {"format": "columns", "limit": 100_000, "fields": "loss"}
    page = HTTP.get(f"{url}/v1/jobs/{job_id}/epochs", params=query).json()
    assert page["next_cursor"] is None
    return page["columns"]["loss"]


def state_bytes(database_url: str, job_id: str) -> dict[str, Any]:
    """Snapshots and checkpoints of one job as stored: counts and bytes (SQL length())."""
    key = uuid.UUID(job_id)
    engine = make_engine(database_url)
    with session_factory(engine)() as s:
        snapshots = s.execute(
            select(func.sum(SnapshotChunk.count), func.sum(func.length(SnapshotChunk.parameters)))
            .where(SnapshotChunk.job_id == key)
        ).one()  # fmt: skip
        checkpoints = s.execute(
            select(
                func.count(),
                func.sum(func.length(Checkpoint.arrays)),
                func.sum(func.length(cast(Checkpoint.meta, Text))),
            ).where(Checkpoint.job_id == key)
        ).one()
        epochs = sorted(s.scalars(select(Checkpoint.epoch).where(Checkpoint.job_id == key)))
    engine.dispose()
    return {
        "snapshots": snapshots[0] or 0,
        "snapshot_bytes": snapshots[1] or 0,
        "checkpoints": checkpoints[0],
        "arrays": checkpoints[1] or 0,
        "meta": checkpoints[2] or 0,
        "epochs": epochs,
    }


def run_setup(setup: str, env: dict[str, str], args: argparse.Namespace, home: Path) -> dict:
    database_url = env["DELTAFLOW_DATABASE_URL"]
    found: dict[str, Any] = {}
    stack = Stack(port=free_port(), workers=1, env=env, log_dir=home / "logs")
    stack.start()
    try:
        big = BIG | {"dataset": {"id": big_dataset(database_url)[0]}}
        parents = {name: train(stack.url, setup, name, big | {"optimizer": optimizer})
                   for name, optimizer in OPTIMIZERS.items()}  # fmt: skip
        found["state"] = {name: state_bytes(database_url, i) for name, i in parents.items()}
        frames = found["state"]["sgd"]["epochs"]
        middle = middle_epoch(frames)
        found["middle"], found["replay"] = middle, replay_note(middle, frames)
        found["first"], child = first_epochs(stack.url, parents, big, middle, found["replay"], args)
        found["state"][f"sgd fork at {middle}, to {middle + OWN_EPOCHS}"] = state_bytes(
            database_url, child
        )
        found |= xor_history(stack.url, setup, args.repeat)
    finally:
        stack.stop()
    # (a) on an API alone: the forks it creates stay queued.
    with Stack(port=free_port(), workers=0, env=env, log_dir=home / "logs") as alone:
        found["post"] = post_times(alone.url, parents["sgd"], big, middle, args.posts)
    return found


def train(url: str, setup: str, name: str, body: dict) -> str:
    started = time.perf_counter()
    job = wait(url, post(url, "/v1/jobs", body | {"name": f"parent {name}"})["id"], poll=0.5)
    print(f"  {setup}: trained the {name} parent in {time.perf_counter() - started:.1f} s")
    return job["id"]


def first_epochs(
    url: str, parents: dict[str, str], big: dict, middle: int, replay: str, args: argparse.Namespace
) -> tuple[dict[str, list[tuple[float, float, float]]], str]:
    """(b): {case: [(→ answered, → claimed, → first stored epoch), …]}, and the last fork at
    `middle`."""
    sgd, adam = (f"/v1/jobs/{parents[n]}/fork" for n in ("sgd", "adam"))
    cases = {
        f"fork of the sgd job at its last epoch ({BIG_EPOCHS})": (
            sgd, fork_body(None, BIG_EPOCHS + OWN_EPOCHS)),
        f"fork of the sgd job at epoch {middle} ({replay})": (
            sgd, fork_body(middle, middle + OWN_EPOCHS)),
        f"fork of the adam job at its last epoch ({BIG_EPOCHS})": (
            adam, fork_body(None, BIG_EPOCHS + OWN_EPOCHS)),
        f"new job, same spec (sgd), {OWN_EPOCHS} epochs": (
            "/v1/jobs", big | {"optimizer": OPTIMIZERS["sgd"], "epochs": OWN_EPOCHS}),
    }  # fmt: skip
    samples: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    children: dict[str, str] = {}
    for _ in range(args.runs):  # interleaved, so that load on the machine falls on all
        for label, (path, body) in cases.items():
            times, children[label] = first_stored(url, path, body)
            samples[label].append(times)
    return dict(samples), children[next(k for k in cases if f"epoch {middle} " in k)]


def xor_history(url: str, setup: str, repeat: int) -> dict[str, Any]:
    """(c): the XOR parent and its fork at 50,000, both to 100,000 epochs, read back."""
    started = time.perf_counter()
    xor = wait(url, post(url, "/v1/jobs", XOR | {"name": "xor parent"})["id"], poll=0.5)
    fork = post(url, f"/v1/jobs/{xor['id']}/fork", {"epoch": XOR_FORK_AT})
    wait(url, fork["id"], poll=0.5)
    print(f"  {setup}: XOR parent and fork trained in {time.perf_counter() - started:.1f} s")
    return {
        "identical": losses(url, fork["id"]) == losses(url, xor["id"]),
        "history": {
            "unforked": history_reads(url, xor["id"], repeat),
            "fork": history_reads(url, fork["id"], repeat),
        },
    }


def post_times(url: str, parent: str, big: dict, middle: int, posts: int) -> dict[str, list]:
    """(a): seconds of each POST, by request."""
    path = f"/v1/jobs/{parent}/fork"
    requests = {
        f"POST /v1/jobs/{{id}}/fork, the last epoch ({BIG_EPOCHS})": (
            path, fork_body(None, 2 * BIG_EPOCHS)),
        f"POST /v1/jobs/{{id}}/fork, epoch {middle}": (path, fork_body(middle, 2 * BIG_EPOCHS)),
        "POST /v1/jobs, the same spec, data by id": (
            "/v1/jobs", big | {"optimizer": OPTIMIZERS["sgd"]}),
    }  # fmt: skip
    found = {}
    for label, (where, body) in requests.items():
        post(url, where, body)  # warm-up
        seconds = []
        for _ in range(posts):
            started = time.perf_counter()
            post(url, where, body)
            seconds.append(time.perf_counter() - started)
        found[label] = seconds
    return found


def mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def print_tables(results: dict[str, dict], args: argparse.Namespace) -> None:
    setups = list(results)
    first = results[setups[0]]
    print(f"\n(a) the API's time, median of {args.posts} over HTTP, no worker running\n")
    print(f"| request | {' | '.join(setups)} |")
    print("|---|" + "---|" * len(setups))
    for label in first["post"]:
        cells = " | ".join(
            f"{statistics.median(results[s]['post'][label]) * 1e3:.1f} ms" for s in setups
        )
        print(f"| {label} | {cells} |")

    print(f"\n(b) from just before the POST, one worker, median of {args.runs}\n")
    print("| set-up | case | → answered | → claimed | → first stored epoch |")
    print("|---|---|---|---|---|")
    for s in setups:
        for label, samples in results[s]["first"].items():
            columns = zip(*samples, strict=True)
            cells = " | ".join(f"{statistics.median(c) * 1e3:.0f} ms" for c in columns)
            print(f"| {s} | {label} | {cells} |")

    print(f"\n(c) reading a 100,000-epoch history over HTTP, median of {args.repeat}\n")
    print("| set-up | read | unforked | fork at 50,000 | fork ÷ unforked |")
    print("|---|---|---|---|---|")
    for s in setups:
        history = results[s]["history"]
        for label, plain in history["unforked"].items():
            forked = history["fork"][label]
            print(f"| {s} | {label} | {plain:.1f} ms | {forked:.1f} ms | {forked / plain:.2f} |")
        print(f"| {s} | the fork's 100,000 losses equal the parent's | {results[s]['identical']} |")

    print("\n(d) state kept per job, 784-256-128-10 float64, a snapshot every epoch\n")
    print(
        "| set-up | job | snapshots | per snapshot | snapshots per job | checkpoints (epochs) "
        "| per checkpoint (arrays; meta) | checkpoints per job | checkpoints per snapshot "
        "| checkpoints ÷ snapshots |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in setups:
        for label, state in results[s]["state"].items():
            print(f"| {s} | {label} | " + " | ".join(state_cells(state)) + " |")


def state_cells(st: dict[str, Any]) -> list[str]:
    kept, n = st["arrays"] + st["meta"], max(st["checkpoints"], 1)
    return [
        str(st["snapshots"]),
        mb(st["snapshot_bytes"] / max(st["snapshots"], 1)),
        mb(st["snapshot_bytes"]),
        f"{st['checkpoints']} ({', '.join(map(str, st['epochs']))})",
        f"{mb(st['arrays'] / n)}; {st['meta'] / n / 1e3:.1f} kB",
        mb(kept),
        mb(kept / max(st["snapshots"], 1)),
        f"{kept / st['snapshot_bytes']:.2f}" if st["snapshot_bytes"] else "—",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--posts", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--setups", default="postgresql+redis,embedded")
    args = parser.parse_args()
    results = {}
    for setup in args.setups.split(","):
        with tempfile.TemporaryDirectory() as tmp, environment(setup, Path(tmp)) as env:
            results[setup] = run_setup(setup, env, args, Path(tmp))
    print_tables(results, args)


if __name__ == "__main__":
    main()
