"""What an API key costs a request: median latency of `GET /v1/jobs/{id}` over HTTP with
DELTAFLOW_AUTH=off and =required (a stored key, looked up by its sha256), same database, the
two APIs running side by side and timed in alternation.

    python bench/auth.py [--requests 500] [--runs 7] [--setups sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.schemas import XOR
from cli.services import Stack, free_port
from models.migrate import upgrade

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BOOTSTRAP = "bench-bootstrap-" + "0" * 32


def one_run(client: httpx.Client, path: str, n: int, headers: dict) -> float:
    """Median seconds of n sequential requests."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path, headers=headers)
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.text
    return statistics.median(times)


def measure(url: str, home: Path, requests: int, runs: int) -> tuple[float, float]:
    upgrade(url)
    base = {"DELTAFLOW_DATABASE_URL": url, "DELTAFLOW_HOME": str(home)}
    base |= {"DELTAFLOW_BOOTSTRAP_KEY": BOOTSTRAP}
    with ExitStack() as stack:
        urls = {}
        for auth in ("off", "required"):
            env = base | {"DELTAFLOW_AUTH": auth}
            urls[auth] = stack.enter_context(Stack(port=free_port(), workers=0, env=env)).url
        admin = {"Authorization": f"Bearer {BOOTSTRAP}"}
        off = stack.enter_context(httpx.Client(base_url=urls["off"]))
        req = stack.enter_context(httpx.Client(base_url=urls["required"]))
        created = req.post("/v1/keys", json={"name": "bench", "owner": "default"}, headers=admin)
        key = {"Authorization": f"Bearer {created.json()['key']}"}
        job = off.post("/v1/jobs", json=XOR).json()["id"]
        path = f"/v1/jobs/{job}"
        one_run(off, path, 50, {}), one_run(req, path, 50, key)  # warm-up
        medians = {"off": [], "required": []}
        for _ in range(runs):
            medians["off"].append(one_run(off, path, requests, {}))
            medians["required"].append(one_run(req, path, requests, key))
    return statistics.median(medians["off"]), statistics.median(medians["required"])


def pg_database() -> tuple[str, str]:
    name = f"deltaflow_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--setups", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"GET /v1/jobs/{{id}}, median of {args.runs} runs × {args.requests} requests\n")
    print("| database | auth off | auth required | added per request |")
    print("|---|---|---|---|")
    for setup in args.setups.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            name = None
            if setup == "sqlite":
                url = f"sqlite:///{tmp}/bench.db"
            else:
                name, url = pg_database()
            try:
                off, req = measure(url, Path(tmp), args.requests, args.runs)
            finally:
                if name:
                    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        added = (req - off) * 1e3
        print(f"| {setup} | {off * 1e3:.2f} ms | {req * 1e3:.2f} ms | {added:+.2f} ms |")


if __name__ == "__main__":
    main()
