"""Engine speed: median time per epoch against PyTorch and scikit-learn, measured in one run.

    make bench            (installs the `bench` extra: torch 2.13.0 CPU, scikit-learn)
    python bench/engine.py [--runs 5] [--threads 2]

Each cell is the median over `--runs` runs of the time per epoch (a run trains a fresh model for
a few epochs; building the model and converting the data are not timed). deltaflow runs as the
service runs it, measuring training health (backprop/health.py), and again without it. All
three libraries get the same architecture, data, batch size and plain SGD, and the same number
of BLAS threads. GFLOP/s counts the matmul work of an epoch (see Case.flops_per_epoch) and is
set against numpy's own matmul peak, measured in the same run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from backprop import Trainer, TrainSpec


@dataclass(frozen=True)
class Case:
    key: str
    layers: tuple[int, ...]
    n: int
    batch: int | None
    epochs_per_run: int
    classification: bool = True

    @property
    def flops_per_epoch(self) -> float:
        """2·n·n_{l-1}·n_l each for z^l and ∂C/∂W^l, and for δ^{l-1} except at the input."""
        sizes = [a * b for a, b in zip(self.layers, self.layers[1:], strict=False)]
        return 2.0 * self.n * (2 * sum(sizes) + sum(sizes[1:]))


CASES = [
    Case("(a) 64-128-64-10, n=1797, B=32", (64, 128, 64, 10), 1797, 32, 5),
    Case("(b) 784-256-128-10, n=20000, B=128", (784, 256, 128, 10), 20000, 128, 2),
    Case("(c) XOR 2-4-1, full batch", (2, 4, 1), 4, None, 2000, classification=False),
]


def _data(case: Case, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if case.key.startswith("(c)"):
        return np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float), np.array([0, 1, 1, 0])
    x = rng.normal(size=(case.n, case.layers[0]))
    return x, rng.integers(0, case.layers[-1], case.n)


Runner = Callable[[], Callable[[], None]]  # builds a fresh model, returns "train some epochs"


def _median_epoch_ms(builds: list[Runner | None], case: Case, runs: int) -> list[float | None]:
    """Median ms per epoch of each runner; runs are interleaved so that the machine's load
    drifts over all of them alike."""
    times: list[list[float]] = [[] for _ in builds]
    for build in builds:
        if build:
            build()()  # warm-up: allocations, BLAS kernels, first-call costs
    for _ in range(runs):
        for build, spent in zip(builds, times, strict=True):
            if build:
                train = build()
                started = time.perf_counter()
                train()
                spent.append((time.perf_counter() - started) / case.epochs_per_run * 1e3)
    return [statistics.median(t) if t else None for t in times]


def _health_cost(on: Runner, off: Runner, case: Case, runs: int) -> float:
    """What measuring training health adds to an epoch: the median over 4 × `runs` pairs of
    runs, back to back and in alternating order, of on ÷ off − 1. A pair shares the machine's
    state of the moment, which the two medians of the table's columns do not (on this shared
    2-core VM they drift apart by ±30 % between columns)."""
    ratios = []
    for i in range(4 * runs):
        times = {}
        for name in ("on", "off") if i % 2 == 0 else ("off", "on"):
            train = (on if name == "on" else off)()
            started = time.perf_counter()
            train()
            times[name] = time.perf_counter() - started
        ratios.append(times["on"] / times["off"])
    return statistics.median(ratios) - 1


def engine_runner(case: Case, dtype: str, x, y, health: bool = True) -> Runner:
    head = (
        {"output_activation": "softmax"}
        if case.classification
        else {"output_activation": "sigmoid"}
    )
    spec = TrainSpec.model_validate(
        {
            "network": {"layers": list(case.layers), **head},
            "loss": "cross_entropy" if case.classification else "mse",
            "optimizer": {"name": "sgd", "learning_rate": 0.1},
            "epochs": case.epochs_per_run,
            "batch_size": case.batch,
            "dtype": dtype,
        }
    )

    def build() -> Callable[[], None]:
        trainer = Trainer(spec, x, y, health=health)

        def train() -> None:
            for _ in trainer.epochs():
                pass

        return train

    return build


def torch_runner(case: Case, dtype: str, x, y) -> Runner | None:
    try:
        import torch
    except ImportError:
        return None
    tdtype = getattr(torch, dtype)
    X = torch.tensor(x, dtype=tdtype)
    Y = torch.tensor(y, dtype=torch.long) if case.classification else torch.tensor(y, dtype=tdtype)
    if not case.classification:
        Y = Y[:, None]
    B = case.batch or case.n

    def build() -> Callable[[], None]:
        layers: list[torch.nn.Module] = []
        for i, (a, b) in enumerate(zip(case.layers, case.layers[1:], strict=False)):
            layers.append(torch.nn.Linear(a, b, dtype=tdtype))
            if i < len(case.layers) - 2 or not case.classification:
                layers.append(torch.nn.Sigmoid())
        model = torch.nn.Sequential(*layers)
        loss_fn = torch.nn.CrossEntropyLoss() if case.classification else torch.nn.MSELoss()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)

        def train() -> None:
            for _ in range(case.epochs_per_run):
                perm = torch.randperm(case.n) if case.n > B else None
                for start in range(0, case.n, B):
                    idx = perm[start : start + B] if perm is not None else slice(None)
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn(model(X[idx]), Y[idx])
                    loss.backward()
                    opt.step()

        return train

    return build


def sklearn_runner(case: Case, dtype: str, x, y) -> Runner | None:
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    X = x.astype(dtype)
    classes = np.unique(y)

    def build() -> Callable[[], None]:
        clf = MLPClassifier(
            hidden_layer_sizes=case.layers[1:-1],
            activation="logistic",
            solver="sgd",
            momentum=0.0,
            nesterovs_momentum=False,
            learning_rate_init=0.1,
            batch_size=case.batch or case.n,
            alpha=0.0,
        )

        def train() -> None:
            for _ in range(case.epochs_per_run):
                clf.partial_fit(X, y, classes=classes)

        return train

    return build


def matmul_peak_gflops(dtype: str, runs: int) -> float:
    a = np.random.default_rng(0).normal(size=(2048, 2048)).astype(dtype)
    a @ a
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - started)
    return 2 * 2048**3 / statistics.median(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(args.threads)
        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    with threadpool_limits(args.threads):
        blas = next(
            (p for p in threadpool_info() if p["user_api"] == "blas" and "numpy" in p["filepath"]),
            {},
        )
        peaks = {d: matmul_peak_gflops(d, args.runs) for d in ("float32", "float64")}
        rows = [_measure(case, dtype, args.runs, peaks[dtype]) for case in CASES for dtype in peaks]
    print(
        f"machine: {platform.processor() or platform.machine()}, {args.threads} BLAS threads "
        f"({blas.get('internal_api')} {blas.get('version')}, {blas.get('architecture')}); "
        f"numpy {np.__version__}, torch {torch_version}; median of {args.runs} runs"
    )
    print(
        f"numpy matmul peak: float32 {peaks['float32']:.0f} GFLOP/s, "
        f"float64 {peaks['float64']:.0f} GFLOP/s\n"
    )
    header = ["case", "dtype", "deltaflow", "without health", "health costs", "PyTorch", "sklearn",
              "÷ PyTorch", "GFLOP/s", "of peak"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _fmt(ms: float | None) -> str:
    if ms is None:
        return "—"
    return f"{ms * 1e3:.1f} µs" if ms < 1 else f"{ms:.2f} ms"


def _measure(case: Case, dtype: str, runs: int, peak: float) -> list[str]:
    x, y = _data(case, np.random.default_rng(0))
    runners = [make(case, dtype, x, y) for make in (engine_runner, torch_runner, sklearn_runner)]
    runners.insert(1, engine_runner(case, dtype, x, y, health=False))
    ours, bare, *others = _median_epoch_ms(runners, case, runs)
    cost = _health_cost(runners[0], runners[1], case, runs)
    gflops = case.flops_per_epoch / (ours / 1e3) / 1e9
    ratio = f"{ours / others[0]:.2f}×" if others[0] else "—"
    return [
        case.key,
        dtype,
        _fmt(ours),
        _fmt(bare),
        f"{cost:+.1%}",
        _fmt(others[0]),
        _fmt(others[1]),
        ratio,
        f"{gflops:.3g}",
        f"{gflops / peak:.2%}",
    ]


if __name__ == "__main__":
    main()
