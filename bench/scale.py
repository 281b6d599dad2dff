"""How many workers one PostgreSQL takes: N emulated workers on the real claim and flush path.

    python bench/scale.py [--workload A3000,Areal,B] [--workers 25,50,100,200] [--seconds 30]
                          [--pooler auto|direct|pgbouncer]

Each emulated worker claims a job of its own with `Runner.claim` and then, once a flush
interval (1 s), calls `Runner._flush` — the fenced UPDATE, the history rows, a checkpoint
every DELTAFLOW_CHECKPOINT_INTERVAL, the metrics row — with a buffer holding what it would
have trained since its last flush: the epochs and a snapshot of each, at the workload's rate.
Only the training is left out (the buffer's values are made once), so the machine's two cores
go to PostgreSQL and to the flush path itself. Workloads:

    A3000  XOR 2-4-1 at 3,000 epochs/s, a snapshot every epoch
    Areal  the same at the engine's real speed (measured here first)
    B      784-256-128-10 at 2 epochs/s, a snapshot every epoch

Emulated workers run as threads, a quarter of them in each of 4 processes. Per N: flush
latency p50/p99 (wall time of `_flush`), epochs/s and MB/s stored, PostgreSQL's CPU per flush
(utime + stime of every postgres process), and disk per worker-hour (growth of the database,
WAL excluded). Past ~80 workers the connections go through PgBouncer in transaction mode
(`--pooler auto`; Debian's pgbouncer package), as one connection per worker would exhaust
PostgreSQL's default max_connections of 100. PostgreSQL is expected on 127.0.0.1 (a fresh
database per run, dropped after).
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backprop import Trainer, TrainSpec, datasets
from bench.pooler import PG_ADMIN, PgBouncer, postgres_cpu_seconds
from models.db import make_engine, session_factory
from models.migrate import upgrade
from models.tables import EPOCH_FIELDS, PER_LAYER_FIELDS, Dataset, Job
from settings import Settings
from worker.persist import FlushBuffer
from worker.runner import Runner

INTERVAL = 1.0
PROCESSES = 4
DIRECT_LIMIT = 80  # connections PostgreSQL's default max_connections (100) leaves room for
WORKLOADS = {
    "A3000": ({"network": {"layers": [2, 4, 1]}, "optimizer": {"learning_rate": 2.0}}, 3000.0),
    "Areal": ({"network": {"layers": [2, 4, 1]}, "optimizer": {"learning_rate": 2.0}}, None),
    "B": (
        {
            "network": {"layers": [784, 256, 128, 10], "output_activation": "softmax"},
            "loss": "cross_entropy",
            "optimizer": {"name": "sgd", "learning_rate": 0.1},
            "batch_size": 128,
        },
        2.0,
    ),
}


class Emulated(FlushBuffer):
    """A flush buffer holding `n` epochs from `first` on and a snapshot of each, its values
    cut from arrays made once (what the engine would have produced, in shape and size)."""

    def __init__(self, columns: dict[str, np.ndarray], thetas: np.ndarray) -> None:
        super().__init__(1, None)
        self.template, self.template_thetas = columns, thetas
        self.first, self.n = 1, 0

    def fill(self, first: int, n: int) -> None:
        self.first, self.n = first, n

    def progress(self) -> dict[str, Any]:
        return {"epochs_done": self.first + self.n - 1, "latest_loss": 0.5} if self.n else {}

    def columns(self) -> dict[str, np.ndarray]:
        return {name: values[: self.n] for name, values in self.template.items()}

    def snapshots(self) -> tuple[list[int], np.ndarray]:
        return list(range(self.first, self.first + self.n)), self.template_thetas[: self.n]

    def metrics(self) -> dict[str, Any]:
        return {"epochs_trained": self.n}

    def clear(self) -> None:
        self.n = 0


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    epochs: int = 0
    flushes: int = 0


def _templates(spec: TrainSpec, most: int) -> tuple[dict[str, np.ndarray], np.ndarray, Trainer]:
    """Epoch columns and θs for up to `most` epochs, and a Trainer whose state is checkpointed."""
    rng = np.random.default_rng(0)
    L, sizes = len(spec.network.layers) - 1, spec.network.layers
    columns = {f: rng.uniform(0, 1, most) for f in EPOCH_FIELDS}
    columns |= {f: rng.uniform(0, 1, (most, L)) for f in PER_LAYER_FIELDS}
    columns |= {f: np.full(most, np.nan) for f in ("penalised_loss", "val_loss", "val_accuracy")}
    x = rng.normal(size=(16, sizes[0]))
    y = rng.integers(0, sizes[-1], 16) if sizes[-1] > 1 else rng.integers(0, 2, 16)
    trainer = Trainer(spec, x, y)
    thetas = np.tile(trainer.network.theta, (most, 1)) + rng.normal(0, 1e-3, (most, 1))
    return columns, thetas.astype(trainer.network.theta.dtype), trainer


def _emulate(runner: Runner, job_id: uuid.UUID, spec: TrainSpec, rate: float, window, out: Tally):
    """One worker: claim, then flush every INTERVAL until the window closes."""
    most = int(rate * INTERVAL * 3) + 2
    columns, thetas, trainer = _templates(spec, most)
    buffer = Emulated(columns, thetas)
    claimed = runner.claim(job_id)
    assert claimed is not None, f"job {job_id} could not be claimed"
    lease, epoch = claimed.lease, 0
    runner._checkpointed = last = time.monotonic()
    time.sleep(random.uniform(0, INTERVAL))  # workers flush at spread-out moments
    start, end = window
    while (now := time.monotonic()) < end:
        n = min(most, max(1, round(rate * (now - last))))
        last = now
        buffer.fill(epoch + 1, n)
        trainer.epoch = epoch + n  # what a checkpoint records
        began = time.perf_counter()
        runner._flush(lease, buffer, trainer=trainer)
        took = time.perf_counter() - began
        epoch += n
        if now >= start:
            out.latencies.append(took)
            out.epochs += n
            out.flushes += 1
        time.sleep(max(0.0, INTERVAL - (time.monotonic() - now)))


def _process(url: str, connect_args: dict, jobs: list[str], body: dict, rate: float, window,
             queue) -> None:  # fmt: skip
    """A process of len(jobs) emulated workers (threads), each with its own connection."""
    engine = make_engine(url, pool_size=len(jobs), max_overflow=0, connect_args=connect_args)
    settings = Settings(database_url=url)
    spec = TrainSpec.model_validate(body)
    tallies = [Tally() for _ in jobs]
    threads = [
        threading.Thread(
            target=_emulate,
            args=(Runner(session_factory(engine), settings), uuid.UUID(j), spec, rate, window, t),
        )
        for j, t in zip(jobs, tallies, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    queue.put(tallies)


def _jobs(url: str, body: dict, n: int) -> list[str]:
    spec = TrainSpec.model_validate(body | {"epochs": 10**6})
    engine = make_engine(url)
    with session_factory(engine).begin() as s:
        dataset = Dataset(name="scale", sha256=uuid.uuid4().hex * 2, n_samples=1, n_features=1,
                          n_outputs=1)  # fmt: skip
        s.add(dataset)
        s.flush()
        jobs = [
            Job(
                id=uuid.uuid4(),
                name=f"scale-{i}",
                tags={},
                spec=spec.model_dump(mode="json"),
                dataset_id=dataset.id,
                epochs_total=spec.epochs,
            )
            for i in range(n)
        ]
        s.add_all(jobs)
    engine.dispose()
    return [str(j.id) for j in jobs]


def _database_bytes(admin: psycopg.Connection, name: str) -> int:
    return admin.execute("SELECT pg_database_size(%s)", (name,)).fetchone()[0]


def measure(name: str, url: str, body: dict, rate: float, n: int, seconds: float,
            connect_args: dict) -> dict[str, float]:  # fmt: skip
    """One N: the emulated workers' flushes through a window of `seconds` after a warm-up."""
    jobs = _jobs(url, body, n)
    warm = 5.0 + n / 50  # claims, first flushes, connections
    now = time.monotonic()
    window = (now + warm, now + warm + seconds)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    parts = [jobs[i::PROCESSES] for i in range(PROCESSES) if jobs[i::PROCESSES]]
    procs = [ctx.Process(target=_process, args=(url, connect_args, part, body, rate, window,
                                                 queue)) for part in parts]  # fmt: skip
    for p in procs:
        p.start()
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        time.sleep(max(0.0, window[0] - time.monotonic()))
        cpu, size = postgres_cpu_seconds(), _database_bytes(admin, name)
        time.sleep(max(0.0, window[1] - time.monotonic()))
        cpu, size = postgres_cpu_seconds() - cpu, _database_bytes(admin, name) - size
    tallies = [t for _ in procs for t in queue.get()]
    for p in procs:
        p.join()
    lat = sorted(x for t in tallies for x in t.latencies)
    flushes, epochs = sum(t.flushes for t in tallies), sum(t.epochs for t in tallies)
    return {
        "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)],
        "epochs/s": epochs / seconds, "MB/s": size / seconds / 1e6,
        "cpu_ms": 1e3 * cpu / max(1, flushes), "GB/h": size / (n * seconds) * 3600 / 1e9,
    }  # fmt: skip


def engine_rate(body: dict) -> float:
    """Epochs per second of the bare engine on XOR, one BLAS thread (the workers' count)."""
    from threadpoolctl import threadpool_limits

    xor = datasets.load("xor")
    spec = TrainSpec.model_validate(body | {"epochs": 20_000})
    with threadpool_limits(1, user_api="blas"):
        started = time.perf_counter()
        for _ in Trainer(spec, xor.x, xor.y).epochs():
            pass
    return 20_000 / (time.perf_counter() - started)


def run(workload: str, counts: list[int], seconds: float, pooler: str) -> list[list[str]]:
    body, rate = WORKLOADS[workload]
    rate = rate or engine_rate(body)
    rows = []
    for n in counts:
        via = pooler if pooler != "auto" else ("direct" if n <= DIRECT_LIMIT else "pgbouncer")
        name = f"deltaflow_scale_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            direct = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql:", "postgresql+psycopg:")
            upgrade(f"{direct}/{name}")
            if via == "pgbouncer":
                with PgBouncer() as bouncer:
                    # PgBouncer 1.18 (Debian's) cannot keep server-side prepared statements
                    # across transactions; 1.21+ can (max_prepared_statements, docker-compose).
                    m = measure(name, bouncer.url(name), body, rate, n, seconds,
                                {"prepare_threshold": None})  # fmt: skip
            else:
                m = measure(name, f"{direct}/{name}", body, rate, n, seconds, {})
        finally:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        rows.append([workload, f"{rate:,.0f}", str(n), via, f"{m['p50'] * 1e3:.1f} ms",
                     f"{m['p99'] * 1e3:.1f} ms", f"{m['epochs/s']:,.0f}", f"{m['MB/s']:.1f}",
                     f"{m['cpu_ms']:.2f} ms", f"{m['GB/h']:.2f}"])  # fmt: skip
        print("| " + " | ".join(rows[-1]) + " |", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="A3000,Areal,B")
    parser.add_argument("--workers", default=None, help="N per workload, e.g. 25,50,100")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--pooler", choices=("auto", "direct", "pgbouncer"), default="auto")
    args = parser.parse_args()
    defaults = {"A3000": "50,100,150,200,250", "Areal": "5,10,20,40", "B": "8,16,24,32,40"}
    print(
        "| workload | epochs/s per worker | N | via | flush p50 | flush p99 | epochs/s stored "
        "| MB/s stored | PostgreSQL CPU per flush | disk GB per worker-hour |"
    )
    print("|---" * 10 + "|")
    results = {}
    for workload in args.workload.split(","):
        counts = [int(n) for n in (args.workers or defaults[workload]).split(",")]
        results[workload] = run(workload, counts, args.seconds, args.pooler)
    for workload, rows in results.items():
        fits = [int(r[2]) for r in rows if float(r[5].split()[0]) < INTERVAL * 1e3]
        print(f"{workload}: largest N with p99 flush below {INTERVAL:.0f} s: "
              f"{max(fits) if fits else 'none measured'}")  # fmt: skip


if __name__ == "__main__":
    main()
