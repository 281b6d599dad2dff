"""Bulk history through the Python client: many jobs into one DataFrame, one long history.

    python bench/export.py [--runs 5] [--setups postgresql,sqlite]

The database of bench/history.py (1,000 jobs × 1,000 epochs written as the worker writes them,
and one 2-16-16-1 job trained for 100,000 epochs), its 1,000 jobs gathered into one batch.
Timed through a running API (uvicorn, one process), median of `--runs`:
(e) `Client.history(batch=…)`: the 1,000 jobs' 1,000,000 epochs, every field, into one pandas
DataFrame (GET /v1/epochs, an Arrow stream); the baseline, measured in the same run, is what a
client did before it: one GET …/epochs?format=columns per job (JSON) and a DataFrame of each,
concatenated (one run: it takes seconds).
(f) `Job.history()`: the 100,000-epoch job, every field, into a DataFrame (Arrow), against
GET …/epochs?format=columns (JSON) of the same range into a DataFrame.
Before timing, (e)'s DataFrame is checked against the database, row for row and value for value.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psycopg
from sqlalchemy import select, update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import deltaflow
from bench.history import PG_ADMIN, fill
from cli.services import Stack, free_port
from models import history as stored
from models.db import make_engine, session_factory
from models.tables import EPOCH_FIELDS, PER_LAYER_FIELDS, Batch, Job

N_LAYERS = 3  # the bench's 2-16-16-1 network


def gather(url: str) -> str:
    """The 1,000 small jobs put in one batch; its id."""
    engine = make_engine(url)
    with session_factory(engine).begin() as s:
        batch = Batch(name="export", base={}, grid={})
        s.add(batch)
        s.flush()
        s.execute(update(Job).where(Job.name.like("job-%")).values(batch_id=batch.id))
    engine.dispose()
    return str(batch.id)


def check(url: str, frame: pd.DataFrame) -> None:
    """The export equals the database: the same jobs, epochs and values (NaN where NULL)."""
    engine = make_engine(url)
    with session_factory(engine)() as s:
        ids = list(s.scalars(select(Job.id).where(Job.name.like("job-%")).order_by(Job.id)))
        assert len(frame) == 1_000_000, len(frame)
        groups = frame.groupby("job_id", observed=True)
        assert sorted(groups.groups) == sorted(str(i) for i in ids)
        for job_id in ids:
            mine = groups.get_group(str(job_id))
            cols = stored.epoch_columns(s, job_id, list(EPOCH_FIELDS), N_LAYERS)
            assert np.array_equal(mine["epoch"].to_numpy(), cols["epoch"])
            for name in EPOCH_FIELDS:
                if name in PER_LAYER_FIELDS:
                    got = mine[[f"{name}_{l}" for l in range(1, N_LAYERS + 1)]].to_numpy()
                else:
                    got = mine[name].to_numpy()
                assert np.array_equal(got, cols[name], equal_nan=True), (job_id, name)
    engine.dispose()


def median(call: Callable[[], object], runs: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def json_history(http: httpx.Client, job_id: str) -> pd.DataFrame:
    params = {"format": "columns", "limit": 100_000}
    columns = http.get(f"/v1/jobs/{job_id}/epochs", params=params).json()["columns"]
    return pd.DataFrame(columns)


def measure(url: str, big: str, batch: str, runs: int, home: Path) -> dict[str, float]:
    stack = Stack(port=free_port(), workers=0, env={"DELTAFLOW_DATABASE_URL": url},
                  log_dir=home / "logs")  # fmt: skip
    with stack, deltaflow.Client(stack.url, timeout=300) as c, httpx.Client(
        base_url=stack.url, timeout=300
    ) as http:  # fmt: skip
        check(url, c.history(batch=batch))
        ids = [job.id for job in c.batches.get(batch).jobs()]
        started = time.perf_counter()
        pd.concat([json_history(http, i).assign(job_id=i) for i in ids], ignore_index=True)
        per_job = time.perf_counter() - started
        job = c.jobs.get(big)
        return {
            "e": median(lambda: c.history(batch=batch), runs),
            "e0": per_job,
            "f": median(job.history, runs),
            "f0": median(lambda: json_history(http, big), runs),
        }


def database(setup: str, home: Path) -> tuple[str, str | None]:
    if setup == "sqlite":
        return f"sqlite:///{home}/export.db", None
    name = f"deltaflow_export_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        admin.execute(f'ALTER DATABASE "{name}" SET random_page_cost = 1.1')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--setups", default="postgresql,sqlite")
    args = parser.parse_args()
    results = {}
    for setup in args.setups.split(","):
        print(f"{setup}:")
        with tempfile.TemporaryDirectory() as tmp:
            url, name = database(setup, Path(tmp))
            try:
                big = fill(url)
                results[setup] = measure(url, big, gather(url), args.runs, Path(tmp))
            finally:
                if name:
                    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"\n| through the client (median of {args.runs}) | set-up | Arrow | JSON before | "
          "× faster |")  # fmt: skip
    print("|---|---|---|---|---|")
    for setup, r in results.items():
        print(f"| (e) 1,000 jobs × 1,000 epochs → one DataFrame | {setup} | {r['e']:.2f} s | "
              f"{r['e0']:.2f} s (1,000 requests) | {r['e0'] / r['e']:.1f} |")  # fmt: skip
        print(f"| (f) 100,000 epochs of one job → DataFrame | {setup} | {r['f'] * 1e3:.0f} ms | "
              f"{r['f0'] * 1e3:.0f} ms | {r['f0'] / r['f']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
