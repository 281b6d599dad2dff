"""History queries over HTTP on a full database: median latency of the reads users make most.

    python bench/history.py [--repeat 20] [--setups postgresql,sqlite]

Fills a fresh database per set-up with 1,000 jobs × 1,000 epochs (synthetic, stored as one
flush of a small job stores them) and one 2-16-16-1 job trained for real for 100,000 epochs with a
snapshot every 10, then times, through a running API: (a) that job's whole history in
`format=columns`, (b) a 500-point downsample of it, (c) one weight's trajectory over its
10,001 snapshots, (d) a filtered, loss-ordered page of 50 jobs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.datasets import store
from backprop import TrainSpec, datasets
from cli.services import Stack, free_port
from models import history
from models.db import make_engine, session_factory
from models.migrate import upgrade
from models.status import JobStatus
from models.tables import EPOCH_FIELDS, Job, JobTag
from settings import Settings
from worker.runner import Runner

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BIG = {
    "network": {"layers": [2, 16, 16, 1], "activation": "tanh"},
    "loss": "binary_cross_entropy",
    "optimizer": {"name": "momentum", "learning_rate": 0.05},
    "epochs": 100_000,
    "snapshot_every": 10,
}


def epoch_columns(losses: np.ndarray, norms: np.ndarray) -> dict[str, np.ndarray]:
    """The columns of 1,000 epochs with these losses; the other fields constant (or none)."""
    n = len(losses)
    values = {"loss": losses, "grad_norm_weights": np.tile(norms, (n, 1)),
              "grad_norm_biases": np.tile(norms, (n, 1)), "learning_rate": np.full(n, 0.05),
              "duration_ms": np.full(n, 0.02)}  # fmt: skip
    return {field: values.get(field, np.full(n, np.nan)) for field in EPOCH_FIELDS}


def fill(url: str) -> str:
    """The database at `url` filled; returns the big job's id."""
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    rng = np.random.default_rng(0)
    moons = datasets.load("moons", n=200)
    spec = TrainSpec.model_validate(BIG)
    with sessions.begin() as s:
        dataset = store(s, "default", "moons", moons.x, moons.y)
        big = Job(name="big", tags={}, spec=spec.model_dump(mode="json"), dataset_id=dataset.id,
                  epochs_total=spec.epochs)  # fmt: skip
        s.add(big)
    started = time.perf_counter()
    Runner(sessions, Settings(database_url=url)).run(big.id)
    print(f"  trained the 100,000-epoch job in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    norms = np.zeros(3)
    for chunk in range(10):
        with sessions.begin() as s:
            for i in range(100):
                n = chunk * 100 + i
                job = Job(
                    id=uuid.uuid4(), name=f"job-{n:04d}", tags={"team": "ab"[n % 2]},
                    spec=spec.model_dump(mode="json"), dataset_id=dataset.id, epochs_total=1000,
                    epochs_done=1000, status=JobStatus.SUCCEEDED if n % 5 else JobStatus.FAILED,
                    final_loss=float(rng.uniform(0.01, 1.0)) if n % 5 else None,
                )  # fmt: skip
                s.add(job)
                s.add(JobTag(job_id=job.id, key="team", value="ab"[n % 2]))
                s.flush()
                losses = np.sort(rng.uniform(0.01, 1.0, 1000))[::-1]
                history.write_epochs(s, job.id, 1, epoch_columns(losses, norms))
    print(f"  wrote 1,000 jobs × 1,000 epochs in {time.perf_counter() - started:.1f} s")
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:  # what autovacuum would do after a load like this
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    engine.dispose()
    return str(big.id)


def median_ms(client: httpx.Client, path: str, params: dict, repeat: int) -> float:
    client.get(path, params=params).raise_for_status()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        r = client.get(path, params=params)
        times.append(time.perf_counter() - started)
        r.raise_for_status()
    return statistics.median(times) * 1e3


def measure(url: str, big: str, repeat: int, home: Path) -> dict[str, float]:
    stack = Stack(port=free_port(), env={"DELTAFLOW_DATABASE_URL": url}, log_dir=home / "logs")
    stack.start()
    try:
        with httpx.Client(base_url=stack.url, timeout=60) as c:
            full = c.get(f"/v1/jobs/{big}/epochs", params={"format": "columns", "limit": 100_000})
            assert len(full.json()["columns"]["epoch"]) == 100_000
            return {
                "(a) 100,000 epochs, every field, format=columns": median_ms(
                    c, f"/v1/jobs/{big}/epochs", {"format": "columns", "limit": 100_000}, repeat
                ),
                "(b) 500-point downsample of it": median_ms(
                    c, f"/v1/jobs/{big}/epochs", {"format": "columns", "points": 500}, repeat
                ),
                "(c) w^2_31 over 10,001 snapshots": median_ms(
                    c,
                    f"/v1/jobs/{big}/trajectory",
                    {"layer": 2, "param": "weight", "k": 3, "j": 1},
                    repeat,
                ),
                "(d) 50 jobs: succeeded, tag team:a, by final_loss": median_ms(
                    c,
                    "/v1/jobs",
                    {
                        "status": JobStatus.SUCCEEDED,
                        "tag": "team:a",
                        "order_by": "final_loss",
                        "limit": 50,
                    },
                    repeat,
                ),
            }
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--setups", default="postgresql,sqlite")
    args = parser.parse_args()
    results = {}
    for setup in args.setups.split(","):
        print(f"{setup}:")
        with tempfile.TemporaryDirectory() as tmp:
            home, database = Path(tmp), None
            if setup == "sqlite":
                url = f"sqlite:///{home}/history.db"
            else:
                database = f"deltaflow_history_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute(f'CREATE DATABASE "{database}"')
                    # As docker-compose.yml configures PostgreSQL: storage is an SSD.
                    admin.execute(f'ALTER DATABASE "{database}" SET random_page_cost = 1.1')
                url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
            try:
                results[setup] = measure(url, fill(url), args.repeat, home)
            finally:
                if database:
                    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    setups = list(results)
    print(f"\n| query (median of {args.repeat}, over HTTP) | {' | '.join(setups)} |")
    print("|---|" + "---|" * len(setups))
    for query in results[setups[0]]:
        cells = " | ".join(f"{results[s][query]:.1f} ms" for s in setups)
        print(f"| {query} | {cells} |")


if __name__ == "__main__":
    main()
