"""Hyperparameter search on digits: a full grid, random search, ASHA, Hyperband and PBT through
the service, next to Optuna in process at ASHA's epoch budget.

    python bench/search.py [--runs 3] [--setup embedded|postgres] [--quick]

The task: scikit-learn's digits (1,797 8×8 images, x scaled to [0, 1] by /16, labels 0–9 as
class indices), uploaded once per service with `POST /v1/datasets`; a 64-h-10 network (tanh
hidden layer, softmax output, cross-entropy), `validation_split` 0.2 (the same split for every
trial: the spec's seed is 0 throughout), ranked by `val_loss`. Searched: h, the learning
rate, the batch size and the optimizer (sgd or adam).

- grid: fifo over h × learning rate × batch size × optimizer, every point the full epochs.
- random search: fifo over the space (h — as `network.layers`, a choice of whole lists —, batch
  size and optimizer as choices, the learning rate log-uniform on [0.003, 0.5], which covers the
  grid's), as many samples as the grid has points.
- ASHA over the grid: the grid's points as the batch's `grid`, with `scheduler` asha (η = 3,
  rungs from epoch 1): the issue's target compares it with the grid, on the same candidates.
- ASHA over the space, Hyperband (one full band of brackets), PBT: the space, `metric`
  val_loss, η = 3, rungs from epoch 1. PBT cannot perturb `network.*`: h stays what each trial
  drew (a clone takes its source's).
- Optuna: TPESampler + HyperbandPruner (min 1, max the epochs, η = 3), each trial the same
  `backprop.Trainer` in this process (1 BLAS thread, as a worker has), every epoch's val_loss
  reported to the trial, pruned when Optuna says so, until it has trained as many epochs as the
  ASHA batch before it did in the same run (the trial that reaches the budget is cut there):
  once over the grid's values (every dimension categorical) after ASHA over the grid, once over
  the space after ASHA over the space.

Each service batch runs alone on a real service (`cli.services.Stack`: API, 2 workers, reaper),
one service per run. "best val_loss" is the least val_loss of any epoch of any trial: per job
from `GET /v1/jobs/{id}/epochs?fields=val_loss` (checked against the leaderboard's best_loss);
"worker-epochs spent" is the batch's `epochs_trained` (checked against the epochs each job
stored itself); "wall time" runs from just before the POST to the last job's `finished_at`, and
for Optuna is its time in this process, alone. Cells are medians of `--runs`; run r draws its
samples (and Optuna's sampler) with seed r — the same seed draws the same points in order, so
the searches of a run share their first samples (ASHA's 81 begin with random search's 48). The
checks are printed, never asserted; anything odd the service did — a failed trial, a
disagreeing count, an ERROR line in a service log — is listed after them.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import optuna
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backprop import Diverged, Trainer, TrainSpec
from bench.setups import environment
from bench.sweep import last_finished  # UtcDateTime reads back aware, on both databases
from cli.services import Stack, free_port
from tune import plans
from tune.schedulers import Hyperband

SETUP_NAMES = {"embedded": "embedded", "postgres": "postgresql+redis",
               "postgresql+redis": "postgresql+redis"}  # fmt: skip
OPTIMIZERS = ["sgd", "adam"]
ETA = 3
WORKERS = 2
BATCH_TIMEOUT = 900.0  # s: a batch still unfinished by then is reported as a problem
# Optuna runs right after these batches, on the same candidates, with the epochs they spent.
OPTUNA_AFTER = {"asha-grid": "optuna-grid", "asha": "optuna"}
ROWS = ("grid", "random", "asha-grid", "optuna-grid", "asha", "optuna", "hyperband", "pbt")


@dataclass(frozen=True)
class Size:
    """How big each search is: the default run, or --quick's."""

    hidden: list[int]
    rates: list[float]
    batch_sizes: list[int]
    epochs: int
    asha_samples: int
    pbt_population: int
    pbt_interval: int
    lr_range: tuple[float, float] = (0.003, 0.5)

    @property
    def grid_points(self) -> int:
        return len(self.hidden) * len(self.rates) * len(self.batch_sizes) * len(OPTIMIZERS)

    @property
    def hyperband_samples(self) -> int:
        """One full band: the sum of the brackets' trials (tune/plans.py's arithmetic)."""
        cfg = Hyperband(name="hyperband", reduction_factor=ETA, min_epochs=1,
                        max_epochs=self.epochs)  # fmt: skip
        return sum(n for _, n in plans.brackets(cfg, self.epochs))


DEFAULT = Size(hidden=[16, 32, 64], rates=[0.01, 0.03, 0.1, 0.3], batch_sizes=[16, 64],
               epochs=81, asha_samples=81, pbt_population=16, pbt_interval=9)  # fmt: skip
QUICK = Size(hidden=[16, 64], rates=[0.03, 0.3], batch_sizes=[64], epochs=27, asha_samples=27,
             pbt_population=6, pbt_interval=9)  # fmt: skip


def digits() -> tuple[np.ndarray, np.ndarray]:
    """x in [0, 1] (the pixels are 0..16), y the class labels 0..9 as numbers."""
    data = load_digits()
    return data.data / 16.0, data.target.astype(np.float64)


def spec_body(h: int, rate: float, batch_size: int, optimizer: str, epochs: int) -> dict:
    """The job body's training part; the service's base and Optuna's trials both start here."""
    return {
        "network": {"layers": layers(h), "activation": "tanh", "output_activation": "softmax"},
        "loss": "cross_entropy",
        "optimizer": {"name": optimizer, "learning_rate": rate},
        "epochs": epochs,
        "batch_size": batch_size,
        "validation_split": 0.2,
        "snapshot_every": 1_000_000,  # the initial network only: a search needs no snapshots
    }


def layers(h: int) -> list[int]:
    return [64, h, 10]


def grid(size: Size) -> dict[str, list[Any]]:
    return {
        "network.layers": [layers(h) for h in size.hidden],
        "optimizer.learning_rate": size.rates,
        "batch_size": size.batch_sizes,
        "optimizer.name": OPTIMIZERS,
    }


def space(size: Size) -> dict[str, dict[str, list[Any]]]:
    return {
        "network.layers": {"choice": [layers(h) for h in size.hidden]},
        "optimizer.learning_rate": {"loguniform": list(size.lr_range)},
        "batch_size": {"choice": size.batch_sizes},
        "optimizer.name": {"choice": OPTIMIZERS},
    }


def halving(name: str, size: Size) -> dict[str, Any]:
    return {"name": name, "metric": "val_loss", "mode": "min", "reduction_factor": ETA,
            "min_epochs": 1, "max_epochs": size.epochs}  # fmt: skip


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    body: dict[str, Any]  # the batch body without name, base and seed


def methods(size: Size) -> list[Method]:
    """The service's searches, in the order each run makes them."""
    sp, n_grid, e = space(size), size.grid_points, size.epochs
    rungs = ", ".join(str(r) for r in plans.rungs(1, e, ETA))
    return [
        Method("grid", f"grid (fifo, {n_grid} points × {e} epochs)", {"grid": grid(size)}),
        Method("random", f"random search (fifo, {n_grid} samples × {e} epochs)",
               {"space": sp, "num_samples": n_grid}),
        Method("asha-grid", f"ASHA over the grid's {n_grid} points (η = {ETA}, rungs {rungs})",
               {"grid": grid(size), "scheduler": halving("asha", size)}),
        Method("asha", f"ASHA over the space ({size.asha_samples} samples, η = {ETA})",
               {"space": sp, "num_samples": size.asha_samples,
                "scheduler": halving("asha", size)}),
        Method("hyperband", f"Hyperband ({size.hyperband_samples} samples: one band, η = {ETA})",
               {"space": sp, "num_samples": size.hyperband_samples,
                "scheduler": halving("hyperband", size)}),
        Method("pbt", f"PBT ({size.pbt_population} trials, every {size.pbt_interval} epochs, "
               "quantile 0.25)",
               {"space": sp, "num_samples": size.pbt_population,
                "scheduler": {"name": "pbt", "metric": "val_loss", "mode": "min",
                              "perturbation_interval": size.pbt_interval,
                              "quantile_fraction": 0.25}}),
    ]  # fmt: skip


@dataclass
class Outcome:
    best: float
    epochs: int
    seconds: float
    trials: int


@dataclass
class Service:
    """A running Stack, its client, the uploaded data set, and what went wrong in it."""

    stack: Stack
    http: httpx.Client
    url: str  # the database's
    dataset_id: str
    problems: list[str] = field(default_factory=list)


def upload(http: httpx.Client, x: np.ndarray, y: np.ndarray) -> str:
    answer = http.post("/v1/datasets", json={"name": "digits", "x": x.tolist(), "y": y.tolist()})
    if answer.status_code not in (200, 201):
        raise RuntimeError(f"uploading digits: {answer.status_code} {answer.text}")
    return answer.json()["id"]


def run_batch(svc: Service, method: Method, size: Size, seed: int) -> Outcome:
    """POST the batch, wait for every job to end, read what it found and what it spent."""
    base = spec_body(32, 0.1, size.batch_sizes[-1], "sgd", size.epochs)
    body = {"name": f"search-{method.key}", "base": base | {"dataset": {"id": svc.dataset_id}},
            "seed": seed, **method.body}  # fmt: skip
    sent = datetime.now(UTC)
    answer = svc.http.post("/v1/batches", json=body)
    if answer.status_code != 201:
        raise RuntimeError(f"{method.key}: POST /v1/batches: {answer.status_code} {answer.text}")
    batch_id = answer.json()["id"]
    deadline = time.monotonic() + BATCH_TIMEOUT
    while True:
        time.sleep(1.0)  # seldom: each answer reads every job of the batch
        view = svc.http.get(f"/v1/batches/{batch_id}").json()
        if view["done"] >= view["total"]:
            break
        if time.monotonic() > deadline:
            svc.problems.append(f"{method.key}: not done after {BATCH_TIMEOUT:.0f} s: "
                                f"{view['counts']}")  # fmt: skip
            break
    seconds = (last_finished(svc.url, batch_id) - sent).total_seconds()
    check_statuses(svc, method, view)
    best, stored = history_best(svc, method, view)
    if stored != view["epochs_trained"]:
        svc.problems.append(
            f"{method.key}: epochs_trained {view['epochs_trained']} but the jobs stored "
            f"{stored} epochs of their own"
        )
    return Outcome(best, view["epochs_trained"], seconds, len(view["leaderboard"]))


def check_statuses(svc: Service, method: Method, view: dict) -> None:
    ok = {"succeeded", "stopped"} if "scheduler" in method.body else {"succeeded"}
    bad = {s: n for s, n in view["counts"].items() if s not in ok}
    if not bad:
        return
    svc.problems.append(f"{method.key}: jobs ended {view['counts']}")
    for row in view["leaderboard"]:
        if row["status"] not in ok:
            job = svc.http.get(f"/v1/jobs/{row['job_id']}").json()
            svc.problems.append(f"{method.key}: job {row['job_id']} {row['status']}: "
                                f"{job.get('error') or job.get('reason')}")  # fmt: skip


def history_best(svc: Service, method: Method, view: dict) -> tuple[float, int]:
    """(the least val_loss of any stored epoch of the batch, the epochs its jobs stored
    themselves); the leaderboard's best_loss is checked against the first."""
    best, stored = math.inf, 0
    for row in view["leaderboard"]:
        job = row["job_id"]
        cols = epochs(svc.http, job, own=False)
        values = [v for v in cols["val_loss"] if v is not None]
        job_best = min(values, default=math.inf)
        best = min(best, job_best)
        stored += len(epochs(svc.http, job, own=True)["epoch"])
        if (
            row["best_loss"] is not None
            and values
            and not math.isclose(row["best_loss"], job_best, rel_tol=1e-9)
        ):
            svc.problems.append(
                f"{method.key}: job {job} best_loss {row['best_loss']!r} but its least "
                f"val_loss is {job_best!r}"
            )
    return best, stored


def epochs(http: httpx.Client, job_id: str, own: bool) -> dict[str, list]:
    params = {"fields": "val_loss", "format": "columns", "limit": 100_000,
              "own": str(own).lower()}  # fmt: skip
    answer = http.get(f"/v1/jobs/{job_id}/epochs", params=params)
    answer.raise_for_status()
    return answer.json()["columns"]


def optuna_search(size: Size, budget: int, seed: int, x, y, on_grid: bool) -> Outcome:
    """TPE + Hyperband pruning, in this process, until `budget` epochs: over the grid's values
    (every dimension categorical) when `on_grid`, else over the space."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=size.epochs, reduction_factor=ETA
    )
    # Named: the pruner assigns a trial's bracket from a hash of the study's name and the
    # trial's number, so an unnamed study (a random name) would prune differently each time.
    study = optuna.create_study(
        study_name=f"search-{seed}", direction="minimize", sampler=sampler, pruner=pruner
    )
    lo, hi = size.lr_range
    spent, best, trials = 0, math.inf, 0
    started = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):
        while spent < budget:
            trial = study.ask()
            h = trial.suggest_categorical("h", size.hidden)
            rate = (trial.suggest_categorical("learning_rate", size.rates) if on_grid
                    else trial.suggest_float("learning_rate", lo, hi, log=True))  # fmt: skip
            batch_size = trial.suggest_categorical("batch_size", size.batch_sizes)
            optimizer = trial.suggest_categorical("optimizer", OPTIMIZERS)
            spec = TrainSpec.model_validate(spec_body(h, rate, batch_size, optimizer, size.epochs))
            trials += 1
            state, last = optuna.trial.TrialState.COMPLETE, None
            try:
                for r in Trainer(spec, x, y).epochs():
                    spent += 1
                    best, last = min(best, r.val_loss), r.val_loss
                    trial.report(r.val_loss, r.epoch)
                    if spent >= budget or trial.should_prune():
                        if r.epoch < size.epochs:
                            state = optuna.trial.TrialState.PRUNED
                        break
            except Diverged:
                state = optuna.trial.TrialState.FAIL
            done = state == optuna.trial.TrialState.COMPLETE
            study.tell(trial, last if done else None, state=state)
    return Outcome(best, spent, time.perf_counter() - started, trials)


LOG_PROBLEM = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback|Exception")


def log_problems(log_dir: Path) -> list[str]:
    """ERROR, CRITICAL, Traceback and exception lines of the service's logs, each once with
    its count and the process that wrote it."""
    seen: Counter[str] = Counter()
    for path in sorted(log_dir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if LOG_PROBLEM.search(line):
                seen[f"{path.stem}: {line.strip()[:400]}"] += 1
    return [f"{line} (×{n})" if n > 1 else line for line, n in seen.items()]


def measure(size: Size, runs: int, setup: str) -> tuple[dict[str, list[Outcome]], list[str]]:
    """Every run of every method on `setup`, and the problems seen; run r: one fresh service,
    the service's batches one after another, Optuna right after ASHA (it needs its budget)."""
    x, y = digits()
    found: dict[str, list[Outcome]] = defaultdict(list)
    problems: list[str] = []
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp, environment(setup, Path(tmp)) as env:
            home = Path(tmp)
            stack = Stack(port=free_port(), workers=WORKERS, env=env, log_dir=home / "logs")
            stack.start()
            try:
                with httpx.Client(base_url=stack.url, timeout=120) as http:
                    svc = Service(stack, http, env["DELTAFLOW_DATABASE_URL"], upload(http, x, y))
                    for method in methods(size):
                        outcome = run_batch(svc, method, size, seed=run)
                        found[method.key].append(outcome)
                        note(setup, run, method.key, outcome)
                        if method.key in OPTUNA_AFTER:
                            key = OPTUNA_AFTER[method.key]
                            on_grid = method.key == "asha-grid"
                            opt = optuna_search(size, outcome.epochs, run, x, y, on_grid)
                            found[key].append(opt)
                            note(setup, run, key, opt)
            finally:
                stack.stop()
            problems += [f"run {run + 1}: {p}" for p in svc.problems]
            problems += [f"run {run + 1}: {p}" for p in log_problems(home / "logs")]
    return found, problems


def note(setup: str, run: int, key: str, o: Outcome) -> None:
    print(f"{setup} run {run + 1} {key}: best {o.best:.6f}, {o.epochs} epochs, {o.trials} "
          f"trials, {o.seconds:.1f} s", file=sys.stderr, flush=True)  # fmt: skip


def median(outcomes: list[Outcome], attr: str) -> float:
    return statistics.median(getattr(o, attr) for o in outcomes)


def table(size: Size, setup: str, found: dict[str, list[Outcome]], several: bool) -> None:
    labels = {m.key: m.label for m in methods(size)}
    optuna_label = f"Optuna {optuna.__version__}: TPE + HyperbandPruner, in process"
    labels["optuna-grid"] = f"{optuna_label}, over the grid's values (ASHA's epochs)"
    labels["optuna"] = f"{optuna_label}, over the space (ASHA's epochs)"
    grid_epochs = median(found["grid"], "epochs")
    prefix = f"{setup}: " if several else ""
    for key in ROWS:
        got = found[key]
        epochs_spent = median(got, "epochs")
        print(f"| {prefix}{labels[key]} | {median(got, 'best'):.4f} | {epochs_spent:,.0f} "
              f"| {100 * epochs_spent / grid_epochs:.1f} % | {median(got, 'seconds'):.1f} "
              f"| {median(got, 'trials'):.0f} |")  # fmt: skip


def checks(setup: str, found: dict[str, list[Outcome]], several: bool) -> None:
    """The issue's two targets, for ASHA over the grid's points and over the space."""
    prefix = f"{setup}: " if several else ""
    grid = found["grid"]
    g_best, g_ep = median(grid, "best"), median(grid, "epochs")
    for key, what in (("asha-grid", "the grid's points"), ("asha", "the space")):
        asha, opt = found[key], found[OPTUNA_AFTER[key]]
        a_best, a_ep, o_best = median(asha, "best"), median(asha, "epochs"), median(opt, "best")
        gap, share = a_best / g_best - 1, a_ep / g_ep
        ok = gap <= 0.02 and share <= 0.10
        runs_ok = sum(a.best / g.best - 1 <= 0.02 and a.epochs / g.epochs <= 0.10
                      for a, g in zip(asha, grid, strict=True))  # fmt: skip
        print(f"- {prefix}ASHA over {what} within 2 % of grid best with ≤ 10 % of grid epochs: "
              f"{'yes' if ok else 'no'} ({a_best:.4f} vs grid {g_best:.4f}, {100 * gap:+.1f} %; "
              f"{a_ep:,.0f} of {g_ep:,.0f} epochs, {100 * share:.1f} %; "
              f"{runs_ok} of {len(asha)} runs)")  # fmt: skip
        runs_ok = sum(a.best <= o.best for a, o in zip(asha, opt, strict=True))
        print(f"- {prefix}ASHA over {what} ≤ Optuna over the same at equal epochs: "
              f"{'yes' if a_best <= o_best else 'no'} ({a_best:.4f} vs Optuna {o_best:.4f} in "
              f"{a_ep:,.0f} epochs; {runs_ok} of {len(asha)} runs)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="default 3 (--quick: 1)")
    parser.add_argument(
        "--setup", default="embedded", help="embedded, postgres (PostgreSQL + Redis), or both"
    )
    parser.add_argument("--quick", action="store_true", help="a small grid: a smoke run")
    args = parser.parse_args()
    size = QUICK if args.quick else DEFAULT
    runs = args.runs or (1 if args.quick else 3)
    try:
        setups = [SETUP_NAMES[s.strip()] for s in args.setup.split(",")]
    except KeyError as exc:
        parser.error(f"unknown set-up {exc}; choose from {', '.join(SETUP_NAMES)}")
    results, problems = {}, []
    for setup in setups:
        results[setup], seen = measure(size, runs, setup)
        problems += [f"{setup}: {p}" for p in seen]
    several = len(setups) > 1
    print(f"digits, 64-h-10 (tanh, softmax, cross-entropy), validation_split 0.2, "
          f"{size.epochs} epochs at most; {WORKERS} workers; runs: {runs}; medians")  # fmt: skip
    print("| method | best val_loss | worker-epochs spent | % of grid epochs | wall time s "
          "| trials |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for setup in setups:
        table(size, setup, results[setup], several)
    print()
    for setup in setups:
        checks(setup, results[setup], several)
    print()
    if problems:
        print("service problems seen:")
        for p in problems:
            print(f"- {p}")
    else:
        print("service problems seen: none")


if __name__ == "__main__":
    main()
