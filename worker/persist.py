"""Turning engine output into rows: the flush buffer, and the checkpoint codec."""

from __future__ import annotations

import uuid
from operator import attrgetter
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from backprop import EpochResult, Trainer
from backprop.rules import Watch
from models import history
from models.arrays import pack, unpack
from models.base import utcnow
from models.bulk import upsert
from models.tables import EPOCH_FIELDS, Checkpoint
from worker.metrics import histogram

_FIELDS = {name: attrgetter(name) for name in EPOCH_FIELDS}


def load_checkpoint(row: Checkpoint) -> dict[str, Any]:
    """The Trainer.state() that `checkpoint_values` stored."""
    return {"arrays": unpack(row.arrays, row.meta["arrays"]), "meta": row.meta["state"]}


def checkpoint_values(job_id: uuid.UUID, trainer: Trainer) -> dict[str, Any]:
    """The checkpoints row for the trainer's state now."""
    state = trainer.state()
    blob, manifest = pack(state["arrays"])
    return {
        "job_id": job_id,
        "epoch": trainer.epoch,
        "meta": {"state": state["meta"], "arrays": manifest},
        "arrays": blob,
        "updated_at": utcnow(),
    }


class FlushBuffer:
    """What a worker has trained but not yet written: epoch results and snapshots.

    Epochs up to `stored` — the job's epochs_done when it was claimed — are in the database
    already: a worker that resumed from a checkpoint older than that replays them (bit-identical,
    so nothing needs checking) and they are not buffered again. That is what lets a checkpoint
    be written every few flushes rather than at each one."""

    def __init__(self, snapshot_every: int, best_loss: float | None, stored: int = 0) -> None:
        self.snapshot_every = snapshot_every
        self.stored = stored
        self.results: list[EpochResult] = []
        self.snapshot_epochs: list[int] = []
        self.thetas: list[bytes] = []  # θ after each of snapshot_epochs, in the engine's dtype
        self.dtype: np.dtype | None = None
        self.best_loss = best_loss
        self.last_loss: float | None = None
        self.watch: Watch | None = None  # the run's alert rules (backprop/rules.py)
        self._last_snapshot = -1
        self.keyframe: dict[str, Any] | None = None  # a fork's starting state, for its first flush

    def add(self, r: EpochResult, trainer: Trainer) -> None:
        if r.epoch <= self.stored:
            return
        self.results.append(r)
        self.watch = trainer.watch  # its alerts are read once a flush, in progress()
        watched = r.loss if r.val_loss is None else r.val_loss
        if self.best_loss is None or watched < self.best_loss:
            self.best_loss = watched
        self.last_loss = r.loss
        if r.epoch % self.snapshot_every == 0:
            self.add_snapshot(r.epoch, trainer)

    def add_snapshot(self, epoch: int, trainer: Trainer) -> None:
        """θ as it is now: every W^l and b^l in the engine's layout (backprop/layout.py). The
        initial one (epoch 0) is taken again by a worker that starts a job afresh; its chunk
        is then ignored as a repeat (models/history.py)."""
        if epoch == self._last_snapshot or (self.stored > 0 and epoch <= self.stored):
            return
        theta = trainer.network.theta
        self.dtype = theta.dtype
        self.snapshot_epochs.append(epoch)
        self.thetas.append(theta.tobytes())
        self._last_snapshot = epoch

    def progress(self) -> dict[str, Any]:
        """The job row's progress columns after this buffer is written."""
        if not self.results:
            return {}
        return {
            "epochs_done": self.results[-1].epoch,
            "latest_loss": self.last_loss,
            "best_loss": self.best_loss,
            "health": self.watch.report() if self.watch is not None else None,
        }

    def columns(self) -> dict[str, np.ndarray]:
        """The buffered epochs as one float64 array per field (NaN for None), (n, L) for the
        per-layer ones: what models.history stores as one row."""
        return {
            name: np.array(list(map(get, self.results)), dtype=np.float64)
            for name, get in _FIELDS.items()
        }

    def snapshots(self) -> tuple[list[int], np.ndarray]:
        """The snapshot epochs and θ after each, shape (len(epochs), P)."""
        if not self.thetas:
            return [], np.empty((0, 0))
        thetas = np.frombuffer(b"".join(self.thetas), self.dtype)
        return self.snapshot_epochs, thetas.reshape(len(self.thetas), -1)

    def write(self, s: Session, job_id: uuid.UUID, trainer: Trainer | None) -> None:
        """The epochs and snapshots, and, given a trainer, its checkpoint."""
        done = self.progress().get("epochs_done")
        if done is not None:
            columns = self.columns()
            history.write_epochs(s, job_id, done - len(columns["loss"]) + 1, columns)
        epochs, thetas = self.snapshots()
        history.write_snapshots(s, job_id, epochs, thetas)
        keys = ("job_id", "epoch")
        if self.keyframe is not None:
            upsert(s, Checkpoint, self.keyframe, keys)
        if trainer is not None:
            upsert(s, Checkpoint, checkpoint_values(job_id, trainer), keys)

    def metrics(self) -> dict[str, Any]:
        """What writing this buffer adds to the worker's counters (worker/metrics.py)."""
        if not self.results:
            return {}
        ms = np.fromiter((r.duration_ms for r in self.results), np.float64, len(self.results))
        return {"epochs_trained": len(self.results), "epoch_seconds": histogram(ms / 1e3)}

    def clear(self) -> None:
        self.keyframe = None
        self.results.clear()
        self.snapshot_epochs.clear()
        self.thetas.clear()
