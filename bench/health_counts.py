"""What training health adds to an epoch of bench/engine.py's case (a), counted rather than timed.

    python bench/health_counts.py [--src DIR]      (needs valgrind; about 6 minutes)

Timings of a few percent drown in this shared VM's noise (bench/README.md), so this counts:
cachegrind runs case (a) for 2 and for 6 epochs, with and without health, in one BLAS thread,
and the difference per epoch of the instructions and of the simulated last-level data misses is
printed. The last level is modelled as this CPU's L2 (512 KiB, 8-way), where an epoch's working
set spills. `--src` measures another checkout's engine (say, a worktree of an older commit).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CACHEGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", "--LL=524288,8,64",
              "--cachegrind-out-file=/dev/null"]  # fmt: skip
FIELDS = {"instructions": r"I\s+refs", "misses": r"LLd misses"}


def child(src: str, dtype: str, health: bool, epochs: int) -> None:
    """Train case (a) for `epochs` epochs: what cachegrind counts."""
    sys.path.insert(0, src)
    sys.path.insert(0, str(Path(__file__).parent))
    import numpy as np
    from engine import CASES, _data

    from backprop import Trainer, TrainSpec

    case = CASES[0]
    x, y = _data(case, np.random.default_rng(0))
    spec = TrainSpec.model_validate({
        "network": {"layers": list(case.layers), "output_activation": "softmax"},
        "loss": "cross_entropy", "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "epochs": epochs, "batch_size": case.batch, "dtype": dtype,
    })  # fmt: skip
    for _ in Trainer(spec, x, y, health=health).epochs():
        pass


def counted(src: str, dtype: str, health: bool, epochs: int) -> dict[str, int]:
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, __file__, "--child", src, dtype, str(int(health)), str(epochs)]
    done = subprocess.run(CACHEGRIND + argv, env=env, capture_output=True, text=True, check=True)
    out = {}
    for name, pattern in FIELDS.items():
        found = re.search(pattern + r"\s*:\s*([\d,]+)", done.stderr)
        if found is None:
            raise RuntimeError(f"cachegrind printed no {name}: {done.stderr[-500:]}")
        out[name] = int(found.group(1).replace(",", ""))
    return out


def per_epoch(src: str, dtype: str, health: bool) -> dict[str, float]:
    with ThreadPoolExecutor(2) as pool:
        short, long = pool.map(lambda e: counted(src, dtype, health, e), (2, 6))
    return {k: (long[k] - short[k]) / 4 for k in FIELDS}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--child", nargs=4, metavar=("SRC", "DTYPE", "HEALTH", "EPOCHS"))
    args = parser.parse_args()
    if args.child:
        src, dtype, health, epochs = args.child
        child(src, dtype, health == "1", int(epochs))
        return
    print(f"engine: {args.src}; case (a) 64-128-64-10, n=1797, B=32; per epoch (6 − 2 epochs)")
    print()
    print("| (a), per epoch | instructions | with health | simulated L2 misses | with health |")
    print("|---|---|---|---|---|")
    for dtype in ("float32", "float64"):
        off, on = (per_epoch(args.src, dtype, health) for health in (False, True))
        ins, miss = on["instructions"] - off["instructions"], on["misses"] - off["misses"]
        print(f"| {dtype} | {off['instructions'] / 1e6:.2f} M "
              f"| {ins / 1e6:+.2f} M ({ins / off['instructions']:+.1%}) "
              f"| {off['misses'] / 1e3:,.0f} k "
              f"| {miss / 1e3:+,.0f} k ({miss / off['misses']:+.1%}) |")  # fmt: skip


if __name__ == "__main__":
    main()
