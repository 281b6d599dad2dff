"""Uploading MNIST-size data through the Python client: time, and the API's peak memory.

    python bench/upload.py [--runs 3] [--setups embedded,postgresql+redis]

60,000 × 784 float32 features and int64 labels (what MNIST is), sent by
`deltaflow.Client.datasets.upload` as an .npz to a running API (uvicorn, one process) on each
set-up. Each run's data differ in one value, so each is stored anew (an upload of stored
content stops before the insert). Measured per run: the wall time of the call, and the API
process's peak resident memory during it above its resident memory before it (Linux: the
peak is reset through /proc/PID/clear_refs and read as VmHWM). The baseline, measured in the
same run: numpy.savez and numpy.load of the same arrays in this process, the least any
upload does (serialise, then parse).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import deltaflow
from bench.setups import SETUPS, environment
from cli.services import Stack, free_port

N, FEATURES = 60_000, 784


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def reset_peak(pid: int) -> None:
    """VmHWM back to the current resident size (Linux ≥ 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def baseline(x: np.ndarray, y: np.ndarray, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        buffer = io.BytesIO()
        np.savez(buffer, x=x, y=y)
        buffer.seek(0)
        with np.load(buffer) as npz:
            npz["x"].astype(np.float64), npz["y"].astype(np.float64)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(setup: str, x: np.ndarray, y: np.ndarray, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, environment(setup, Path(tmp)) as env:
        stack = Stack(port=free_port(), workers=0, env=env, log_dir=Path(tmp) / "logs")
        with stack, deltaflow.Client(stack.url, timeout=300) as client:
            api = stack.processes["api"].pid
            times, peaks = [], []
            for run in range(runs):
                x[0, 0] = run  # new content each run
                before = memory_kib(api, "VmRSS")
                reset_peak(api)
                started = time.perf_counter()
                record = client.datasets.upload(x, y, name=f"mnist-{run}")
                times.append(time.perf_counter() - started)
                peaks.append((memory_kib(api, "VmHWM") - before) * 1024)
                assert (record["n_samples"], record["n_features"]) == (N, FEATURES), record
            return {"seconds": statistics.median(times), "peak": statistics.median(peaks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--setups", default=",".join(SETUPS))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((N, FEATURES), dtype=np.float32)
    y = rng.integers(0, 10, N)
    size = x.nbytes + y.nbytes
    floor = baseline(x, y, args.runs)
    print(f"data: {size / 2**20:.0f} MiB; baseline (savez + load in-process) {floor:.2f} s")
    print(f"\n| set-up (median of {args.runs}) | upload | × baseline | API peak memory above "
          "idle | × data size |")  # fmt: skip
    print("|---|---|---|---|---|")
    for setup in args.setups.split(","):
        got = measure(setup, x, y, args.runs)
        print(f"| {setup} | {got['seconds']:.2f} s | {got['seconds'] / floor:.1f} | "
              f"{got['peak'] / 2**20:.0f} MiB | {got['peak'] / size:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
