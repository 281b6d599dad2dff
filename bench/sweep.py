"""A sweep through the service (issue 12, target 5), next to the same trainings in one process.

    python bench/sweep.py [--runs 3] [--posts 5] [--setups embedded,postgresql+redis]

The sweep: 1,000 trials of a 2-8-1 network on XOR, 30 epochs each (the defaults otherwise,
so a snapshot every epoch), as 10 learning rates × 100 seeds.

- "a 1,000-point grid created": `POST /v1/batches` of that grid over HTTP, timed by the client,
  median of `--posts`, through a real API (`cli.services.Stack`) with no worker running, so that
  nothing competes with it.
- (5) the same batch through a real service with 2 workers: from just before the POST to the
  last job's `finished_at` (stamped by its worker), median of `--runs`, each on a fresh set-up.
- the floor: the same 1,000 trainings in this process, a plain loop over `backprop.Trainer`.
- Optuna running them in this process: its GridSampler over the same points, each trial one
  Trainer, in-memory storage, its per-trial log lines silenced; `--optuna-runs` (1: it is slow).

The floor and Optuna run with 1 BLAS thread, as the workers do; the floor's runs alternate with
the service's; every ratio divides medians measured in the same run of this script.
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

import httpx
import optuna
from sqlalchemy import func, select
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backprop import Trainer, TrainSpec, datasets
from bench.setups import SETUPS, environment
from cli.services import Stack, free_port
from models.db import make_engine, session_factory
from models.status import JobStatus
from models.tables import Job

RATES = [round(0.25 * (i + 1), 2) for i in range(10)]
SEEDS = list(range(100))
SPEC = {"network": {"layers": [2, 8, 1]}, "epochs": 30}
BATCH = {
    "name": "sweep",
    "base": SPEC | {"dataset": {"builtin": "xor"}},
    "grid": {"optimizer.learning_rate": RATES, "seed": SEEDS},
}


def train(rate: float, seed: int, x, y) -> float:
    spec = TrainSpec.model_validate(SPEC | {"optimizer": {"learning_rate": rate}, "seed": seed})
    *_, last = Trainer(spec, x, y).epochs()
    return last.loss


def floor_seconds() -> float:
    xor = datasets.load("xor")
    started = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):
        for rate in RATES:
            for seed in SEEDS:
                train(rate, seed, xor.x, xor.y)
    return time.perf_counter() - started


def optuna_seconds() -> float:
    xor = datasets.load("xor")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.GridSampler({"rate": RATES, "seed": SEEDS}, seed=0)
    study = optuna.create_study(sampler=sampler, direction="minimize")

    def objective(trial: optuna.Trial) -> float:
        rate = trial.suggest_categorical("rate", RATES)
        return train(rate, trial.suggest_int("seed", SEEDS[0], SEEDS[-1]), xor.x, xor.y)

    started = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):
        study.optimize(objective, n_trials=len(RATES) * len(SEEDS))
    assert len(study.trials) == len(RATES) * len(SEEDS)
    return time.perf_counter() - started


def post_seconds(env: dict[str, str], posts: int, home: Path) -> list[float]:
    """The grid's POST, `posts` times, to an API without workers."""
    stack = Stack(port=free_port(), workers=0, env=env, log_dir=home / "logs")
    stack.start()
    seconds = []
    try:
        with httpx.Client(base_url=stack.url, timeout=120) as http:
            for _ in range(posts):
                started = time.perf_counter()
                answer = http.post("/v1/batches", json=BATCH)
                seconds.append(time.perf_counter() - started)
                assert answer.status_code == 201, answer.text
    finally:
        stack.stop()
    return seconds


def sweep_seconds(env: dict[str, str], home: Path) -> float:
    """(5): submit → the last job's finished_at, 2 workers."""
    stack = Stack(port=free_port(), workers=2, env=env, log_dir=home / "logs")
    stack.start()
    try:
        with httpx.Client(base_url=stack.url, timeout=120) as http:
            sent = datetime.now(UTC)
            batch = http.post("/v1/batches", json=BATCH).json()
            while (done := http.get(f"/v1/batches/{batch['id']}").json())["done"] < done["total"]:
                time.sleep(1.0)  # seldom: each answer reads the 1,000 jobs
    finally:
        stack.stop()
    if done["counts"] != {JobStatus.SUCCEEDED: done["total"]}:
        raise RuntimeError(f"the sweep ended {done['counts']}")
    return (last_finished(env["DELTAFLOW_DATABASE_URL"], batch["id"]) - sent).total_seconds()


def last_finished(url: str, batch_id: str) -> datetime:
    engine = make_engine(url)
    with session_factory(engine)() as s:
        query = select(func.max(Job.finished_at)).where(Job.batch_id == uuid.UUID(batch_id))
        last = s.scalar(query)
    engine.dispose()
    assert last is not None
    return last


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    """Every sample, by row: Optuna first (it is slow), each set-up's POSTs, then the runs,
    each a floor and a sweep on every set-up, so that load on the machine falls on all."""
    samples: dict[str, list[float]] = defaultdict(list)
    samples["optuna"] = [optuna_seconds() for _ in range(args.optuna_runs)]
    setups = args.setups.split(",")
    for setup in setups:
        with tempfile.TemporaryDirectory() as tmp, environment(setup, Path(tmp)) as env:
            samples[f"{setup} post"] = post_seconds(env, args.posts, Path(tmp))
    for _ in range(args.runs):
        samples["floor"].append(floor_seconds())
        for setup in setups:
            with tempfile.TemporaryDirectory() as tmp, environment(setup, Path(tmp)) as env:
                samples[f"{setup} sweep"].append(sweep_seconds(env, Path(tmp)))
    return samples


def rows(setups: list[str]) -> list[tuple[str, str]]:
    found = [
        ("the floor: a plain loop over Trainer, one process", "floor"),
        ("Optuna 5.0.0, GridSampler over the same points, in process", "optuna"),
    ]
    for setup in setups:
        found.append((f"{setup}: a 1,000-point grid created (POST over HTTP)", f"{setup} post"))
        found.append(
            (f"{setup}: (5) the batch, 2 workers, submit → last terminal", f"{setup} sweep")
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--optuna-runs", type=int, default=1)
    parser.add_argument("--posts", type=int, default=5)
    parser.add_argument("--setups", default=",".join(SETUPS))
    args = parser.parse_args()
    samples = measure(args)
    floor = statistics.median(samples["floor"])
    print(f"runs: {args.runs} (Optuna: {args.optuna_runs}; POSTs: {args.posts}); medians")
    print("| case | time | ÷ floor |")
    print("|---|---|---|")
    for label, key in rows(args.setups.split(",")):
        value = statistics.median(samples[key])
        ratio = "" if key.endswith("post") else f"{value / floor:.1f}"
        print(f"| {label} | {value:.3f} s | {ratio} |")
    for key, values in samples.items():
        print(f"{key}: " + ", ".join(f"{v:.3f}" for v in values), file=sys.stderr)


if __name__ == "__main__":
    main()
