"""Service overhead: what running a job through deltaflow costs over training it in-process.

    python bench/service.py [--runs 3] [--setups embedded,postgresql+redis]

For each set-up a real service runs (uvicorn API, Celery workers, reaper; `cli.services.Stack`):
(1) XOR 2-4-1, 10,000 epochs, a snapshot every epoch, and (2) 784-256-128-10 on 20,000 samples
for 5 epochs: the job's wall time in the service (finished_at − started_at, written by the
worker) over the bare Trainer's time for the same spec, measured in the same run, median of
`--runs`; (3) dispatch latency, submit → started_at, over 50 jobs; (4) 200 XOR jobs of 200
epochs on 2 worker processes: jobs per second, first submit to last finish.
PostgreSQL and Redis are expected on 127.0.0.1 (a fresh database and Redis index are used).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.datasets import store
from backprop import Trainer, TrainSpec, datasets
from bench.setups import environment
from cli.services import Stack, free_port
from models.db import make_engine, session_factory
from models.status import TERMINAL, JobStatus

XOR = {
    "network": {"layers": [2, 4, 1]},
    "optimizer": {"learning_rate": 2.0},
    "dataset": {"builtin": "xor"},
}
BIG = {
    "network": {"layers": [784, 256, 128, 10], "output_activation": "softmax"},
    "loss": "cross_entropy",
    "optimizer": {"name": "sgd", "learning_rate": 0.1},
    "epochs": 5,
    "batch_size": 128,
    "snapshot_every": 5,
}


def bare_seconds(body: dict, x, y) -> float:
    spec = TrainSpec.model_validate({k: v for k, v in body.items() if k != "dataset"})
    started = time.perf_counter()
    for _ in Trainer(spec, x, y).epochs():
        pass
    return time.perf_counter() - started


# One client for the run: httpx.get() builds a client, and its TLS context alone costs ~35 ms of
# CPU, which made the benchmark itself the bottleneck of (4) (~10 jobs/s on either set-up).
HTTP = httpx.Client(timeout=60)


def wait(url: str, job_id: str, timeout: float = 600, poll: float = 0.02) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = HTTP.get(f"{url}/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            if job["status"] != JobStatus.SUCCEEDED:
                raise RuntimeError(f"job {job_id} ended {job['status']}: {job['error']}")
            return job
        time.sleep(poll)
    raise TimeoutError(job_id)


def service_seconds(url: str, body: dict) -> float:
    job = HTTP.post(f"{url}/v1/jobs", json=body).json()
    done = wait(url, job["id"], poll=0.25)  # seldom, to leave the CPU to the worker
    started = datetime.fromisoformat(done["started_at"])
    return (datetime.fromisoformat(done["finished_at"]) - started).total_seconds()


def ratio_row(name: str, url: str, body: dict, x, y, runs: int) -> list[str]:
    with threadpool_limits(1, user_api="blas"):  # the workers' BLAS thread count
        bare = statistics.median(bare_seconds(body, x, y) for _ in range(runs))
    service_seconds(url, body)  # warm-up: the worker's first read of the data set
    service = statistics.median(service_seconds(url, body) for _ in range(runs))
    return [name, f"{service:.3f} s", f"{bare:.3f} s", f"{service / bare:.2f}"]


def dispatch_latency(url: str, n: int = 50) -> tuple[float, float]:
    latencies = []
    for i in range(n):
        sent = datetime.now(UTC)
        job = HTTP.post(f"{url}/v1/jobs", json=XOR | {"epochs": 5, "seed": i}).json()
        done = wait(url, job["id"])
        latencies.append((datetime.fromisoformat(done["started_at"]) - sent).total_seconds())
    q = statistics.quantiles(latencies, n=20)
    return statistics.median(latencies), q[18]


def throughput(url: str, n: int = 200) -> float:
    """Jobs per second from the first submit to the last job's finished_at (stamped by its
    worker), so the polling that waits for them adds no time of its own."""
    started = datetime.now(UTC)
    ids = [
        HTTP.post(f"{url}/v1/jobs", json=XOR | {"epochs": 200, "seed": i}).json()["id"]
        for i in range(n)
    ]
    last = max(datetime.fromisoformat(wait(url, job_id, poll=0.1)["finished_at"]) for job_id in ids)
    return n / (last - started).total_seconds()


def big_dataset(database_url: str) -> tuple[str, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20_000, 784)), rng.integers(0, 10, 20_000)
    engine = make_engine(database_url)
    with session_factory(engine).begin() as s:
        dataset_id = str(store(s, "default", "bench 20000x784", x, y).id)
    engine.dispose()
    return dataset_id, x, y


def run_setup(name: str, env: dict[str, str], runs: int, home: Path) -> list[list[str]]:
    # One worker for the ratios and the latency, so every run meets the same warm process.
    stack = Stack(port=free_port(), workers=1, env=env, log_dir=home / "logs")
    stack.start()
    try:
        xor = datasets.load("xor")
        body = XOR | {"epochs": 10_000, "snapshot_every": 1}
        rows = [ratio_row(f"{name}: (1) XOR 10,000 epochs, snapshot each", stack.url, body,
                          xor.x, xor.y, runs)]  # fmt: skip
        dataset_id, x, y = big_dataset(env["DELTAFLOW_DATABASE_URL"])
        big = BIG | {"dataset": {"id": dataset_id}}
        rows.append(ratio_row(f"{name}: (2) 784-256-128-10, 5 epochs", stack.url, big, x, y, runs))
        p50, p95 = dispatch_latency(stack.url)
        rows.append([f"{name}: (3) submit → running, 50 jobs", f"p50 {p50 * 1e3:.0f} ms",
                     f"p95 {p95 * 1e3:.0f} ms", ""])  # fmt: skip
    finally:
        stack.stop()
    stack = Stack(port=free_port(), workers=2, env=env, log_dir=home / "logs")
    stack.start()
    try:
        rate = throughput(stack.url)
        rows.append([f"{name}: (4) 200 XOR jobs, 2 workers", f"{rate:.1f} jobs/s", "", ""])
    finally:
        stack.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--setups", default="embedded,postgresql+redis")
    args = parser.parse_args()
    rows = []
    for setup in args.setups.split(","):
        with tempfile.TemporaryDirectory() as tmp, environment(setup, Path(tmp)) as env:
            env["DELTAFLOW_FLUSH_INTERVAL"] = "1.0"
            rows += run_setup(setup, env, args.runs, Path(tmp))
    print("| case | service | bare Trainer | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
