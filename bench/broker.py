"""What the broker costs a job: dispatch latency, the gap a busy worker leaves between the jobs
of a backlog, and what an idle worker burns.

    python bench/broker.py [--jobs 50] [--idle 30] [--setups embedded,postgresql+redis]

A real service per set-up (`cli.services.Stack`: uvicorn API, one Celery worker, reaper):
(a) submit → started_at for `--jobs` XOR jobs of 5 epochs submitted one at a time, each after
the previous one ended (as bench/service.py case 3), and for `--cold` more, each submitted
after 3 s without any (a worker that idles may poll less often); (b) for `--jobs` XOR jobs of
200 epochs with a snapshot each queued behind a long job, one job's finished_at → the next one's
started_at on the busy worker (ack, the next message, the task's start, the claim); (c) the CPU
time the idle worker's processes (Celery's main process, which polls the broker, and its pool
process) spend over `--idle` seconds, from /proc/<pid>/stat, as a share of one core.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.setups import SETUPS, environment
from cli.services import Stack, free_port
from models.status import TERMINAL

XOR = {"network": {"layers": [2, 4, 1]}, "optimizer": {"learning_rate": 2.0},
       "dataset": {"builtin": "xor"}}  # fmt: skip
SMALL = XOR | {"epochs": 200, "snapshot_every": 1}


def wait(http: httpx.Client, job_id: str) -> dict:
    while True:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.005)


def stamp(job: dict, field: str) -> float:
    return datetime.fromisoformat(job[field]).timestamp()


def dispatch(http: httpx.Client, n: int, quiet: float = 0.0) -> list[float]:
    """(a) submit → started_at, one job at a time, each `quiet` seconds after the last ended."""
    latencies = []
    for i in range(n):
        time.sleep(quiet)
        sent = datetime.now(UTC).timestamp()
        job_id = http.post("/v1/jobs", json=XOR | {"epochs": 5, "seed": i}).json()["id"]
        latencies.append(stamp(wait(http, job_id), "started_at") - sent)
    return latencies


def backlog_gaps(http: httpx.Client, n: int) -> list[float]:
    """(b) finished → next started on a busy worker, for the jobs queued behind a long one
    (~1.5 s of training) while it ran; a gap is counted only if the next job was created
    before the previous one finished, or it would time the submissions, not the worker."""
    head = XOR | {"epochs": 60_000, "snapshot_every": 60_000}
    ids = [http.post("/v1/jobs", json=head).json()["id"]]
    ids += [http.post("/v1/jobs", json=SMALL | {"seed": i}).json()["id"] for i in range(n)]
    jobs = sorted((wait(http, j) for j in ids), key=lambda j: stamp(j, "started_at"))
    return [
        stamp(after, "started_at") - stamp(before, "finished_at")
        for before, after in itertools.pairwise(jobs)
        if stamp(after, "created_at") < stamp(before, "finished_at")
    ]


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its children (Celery's pool processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    total = 0
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / tick


def idle_cpu(stack: Stack, seconds: float) -> float:
    """(c) the idle worker's CPU time as a share of one core."""
    pid = stack.processes["worker-1"].pid
    time.sleep(3)  # past the last job's tail: acks, the reaper's pass, logging
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - started)


def run_setup(env: dict[str, str], args: argparse.Namespace, home: Path) -> dict[str, float]:
    stack = Stack(port=free_port(), workers=1, env=env, log_dir=home / "logs")
    stack.start()
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            wait(http, http.post("/v1/jobs", json=SMALL).json()["id"])  # warm-up
            cpu = idle_cpu(stack, args.idle)
            latency = dispatch(http, args.jobs)
            cold = dispatch(http, args.cold, quiet=3.0)
            gaps = backlog_gaps(http, args.jobs)
    finally:
        stack.stop()
    q = statistics.quantiles(latency, n=20)
    return {"(a) submit → started, p50": statistics.median(latency),
            "(a) submit → started, p95": q[18],
            "(a) submit → started after 3 s idle, p50": statistics.median(cold),
            "(b) backlog: finished → next started, p50": statistics.median(gaps),
            "(c) idle worker, CPU": cpu}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--cold", type=int, default=10)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--setups", default=",".join(SETUPS))
    args = parser.parse_args()
    setups = args.setups.split(",")
    cells: dict[str, dict[str, float]] = {}
    for setup in setups:
        with tempfile.TemporaryDirectory() as tmp, environment(setup, Path(tmp)) as env:
            cells[setup] = run_setup(env, args, Path(tmp))
    print(f"| case ({args.jobs} jobs; idle over {args.idle:.0f} s) | " + " | ".join(setups) + " |")
    print("|---" * (len(setups) + 1) + "|")
    for label in cells[setups[0]]:
        values = [cells[s][label] for s in setups]
        if label.startswith("(c)"):
            print(f"| {label} | " + " | ".join(f"{v * 100:.2f} % of a core" for v in values) + " |")
        else:
            print(f"| {label} | " + " | ".join(f"{v * 1e3:.1f} ms" for v in values) + " |")


if __name__ == "__main__":
    main()
