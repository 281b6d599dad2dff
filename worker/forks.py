"""A fork's first run: rebuild its parent's state after the fork epoch, then change it as the
fork's spec says (backprop/fork.py).

The state after epoch k is that of the job that trained epoch k (models/lineage.py): its latest
checkpoint at or before k — or its initial state, drawn from its seed — replayed to k. Training
is deterministic, so the replay is bit-identical to what that job had; nothing it replays is
stored. A fork's first flush then stores its own starting state as its first checkpoint, so
its resumes, and forks of it, never need its ancestors' state again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backprop import Trainer, TrainSpec
from backprop.fork import fork_state
from models.lineage import ForkStart
from worker.persist import load_checkpoint

Data = tuple[Any, Any]


def start(spec: TrainSpec, x: Any, y: Any, fork: ForkStart, data: Callable[[Any], Data]) -> Trainer:
    """The fork's Trainer at epoch `fork.epoch`; `data(dataset_id)` reads a data set. ValueError
    if that state cannot be rebuilt."""
    parent = TrainSpec.model_validate(fork.spec)
    px, py = data(fork.dataset_id)
    if fork.checkpoint is not None:
        trainer = Trainer.restore(parent, px, py, load_checkpoint(fork.checkpoint))
    elif fork.source_is_fork:
        raise ValueError(
            f"job {fork.job_id} holds no state to rebuild epoch {fork.epoch} from (it is a fork "
            "that has not stored its starting state)"
        )
    else:
        trainer = Trainer(parent, px, py)
    for result in trainer.epochs() if trainer.epoch < fork.epoch else ():
        if result.epoch == fork.epoch:
            break
    if trainer.epoch != fork.epoch:
        raise ValueError(
            f"job {fork.job_id} ends at epoch {trainer.epoch}; its state after epoch "
            f"{fork.epoch} does not exist"
        )
    return Trainer.restore(spec, x, y, fork_state(trainer.state(), parent, spec))
