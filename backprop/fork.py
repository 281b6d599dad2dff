"""Forks: the state a new job continues from, given another job's state after epoch k.

A fork of a job at epoch k trains epochs k+1, k+2, … of its own spec starting from the exact
state the parent had after epoch k (`Trainer.state()`: θ, optimizer moments, the generator,
early stopping's counters). Without changes it reproduces the parent's epochs bit for bit; with
them, each change takes effect from epoch k+1:

- a different optimizer kind starts with fresh state (t = 0, zero moments); the same kind
  keeps its moments whatever its new settings (a new learning rate, β, …);
- a different seed re-seeds the generator, so later shuffles differ; the validation split and
  the initial parameters stay those of the parent's `split_seed`;
- early stopping keeps its best value and patience counter; a parent that stopped early goes on
  (the rule is asked again after each new epoch), and a fork without the rule drops them;
- health alerts carry over (the fork reports its parent's up to epoch k), and its own health
  thresholds and stop_when apply from epoch k+1: a rule still firing at k stops the fork only
  after it has ended and fired again;
- the schedule, epochs, batch size, shuffling, L2 and snapshot cadence are read from the spec
  at each epoch, so they need nothing here.

What a fork may not change — the network, dtype, loss and validation split — is refused by
`unforkable` before anything trains.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backprop.spec import TrainSpec
from backprop.train import rng_meta

# A fork starts from the parent's parameters and training rows, so these must stay as they are.
FIXED = {
    "network": "a fork continues the parent's parameters, so its network must be the same",
    "dtype": "a fork continues the parent's parameters in their dtype",
    "loss": "the loss is what the parent's optimizer state and history were computed against",
    "validation_split": "it would change which rows are training rows",
}


def unforkable(parent: TrainSpec, child: TrainSpec) -> dict[str, str]:
    """{field: why} for each field `child` changes that a fork may not."""
    return {
        name: why for name, why in FIXED.items() if getattr(parent, name) != getattr(child, name)
    }


def fork_state(state: dict[str, Any], parent: TrainSpec, child: TrainSpec) -> dict[str, Any]:
    """`state` — the parent's `Trainer.state()` after epoch k — as the child starts from it
    (see the module's docstring); `Trainer.restore(child, x, y, fork_state(…))` then trains
    epoch k+1 on."""
    arrays, meta = dict(state["arrays"]), dict(state["meta"])
    meta.setdefault("split_seed", parent.seed)
    if child.optimizer.name != parent.optimizer.name:
        arrays = {"theta": arrays["theta"]}
        meta["optimizer"] = None
    if child.seed != parent.seed:
        meta["rng"] = rng_meta(np.random.default_rng(child.seed))
    stop = dict(meta["early_stopping"], stopped=False)
    meta["early_stopping"] = stop if child.early_stopping else {
        "best": None, "wait": 0, "stopped": False,
    }  # fmt: skip
    return {"arrays": arrays, "meta": meta}
