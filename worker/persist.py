"""Turning engine output into rows: the flush buffer, and the codecs for data and checkpoints."""

from __future__ import annotations

import struct
import uuid
from operator import attrgetter
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from backprop import EpochResult, Trainer
from models.arrays import pack, to_bytes, unpack
from models.base import utcnow
from models.bulk import insert_ignore_rows, upsert
from models.tables import EPOCH_FIELDS, PER_LAYER_FIELDS, Checkpoint, Epoch, Snapshot
from worker.metrics import histogram


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


# An epoch row: (epoch, *EPOCH_FIELDS), read off the EpochResult attributes of the same names
# in one call; per-layer fields are then packed as float64 bytes.
_row_values = attrgetter("epoch", *EPOCH_FIELDS)
_PACKED = [i for i, name in enumerate(("epoch", *EPOCH_FIELDS)) if name in PER_LAYER_FIELDS]
_DURATION = 1 + EPOCH_FIELDS.index("duration_ms")


def _norms(values: list[float]) -> bytes:
    """float64 little-endian bytes; struct is several times faster than numpy for a few values."""
    return struct.pack(f"<{len(values)}d", *values)


class FlushBuffer:
    """What a worker has trained but not yet written: epoch rows and snapshots."""

    def __init__(self, snapshot_every: int, best_loss: float | None) -> None:
        self.snapshot_every = snapshot_every
        self.epochs: list[list[Any]] = []  # (epoch, *EPOCH_FIELDS), as models.bulk writes them
        self.snapshots: list[tuple[int, bytes]] = []
        self.best_loss = best_loss
        self.last_loss: float | None = None
        self._last_snapshot = -1

    def add(self, r: EpochResult, trainer: Trainer) -> None:
        row = list(_row_values(r))
        for i in _PACKED:
            row[i] = _norms(row[i])
        self.epochs.append(row)
        watched = r.loss if r.val_loss is None else r.val_loss
        if self.best_loss is None or watched < self.best_loss:
            self.best_loss = watched
        self.last_loss = r.loss
        if r.epoch % self.snapshot_every == 0:
            self.add_snapshot(r.epoch, trainer)

    def add_snapshot(self, epoch: int, trainer: Trainer) -> None:
        """θ as it is now: every W^l and b^l in the engine's layout (backprop/layout.py)."""
        if epoch == self._last_snapshot:
            return
        self.snapshots.append((epoch, to_bytes(trainer.network.theta)))
        self._last_snapshot = epoch

    def progress(self) -> dict[str, Any]:
        """The job row's progress columns after this buffer is written."""
        if not self.epochs:
            return {}
        return {
            "epochs_done": self.epochs[-1][0],
            "latest_loss": self.last_loss,
            "best_loss": self.best_loss,
        }

    def write(self, s: Session, job_id: uuid.UUID, trainer: Trainer | None) -> None:
        """Epoch rows and snapshots (insert-or-ignore) and, given a trainer, its checkpoint."""
        insert_ignore_rows(s, Epoch, job_id, self.epochs)
        insert_ignore_rows(s, Snapshot, job_id, self.snapshots)
        if trainer is not None:
            upsert(s, Checkpoint, checkpoint_values(job_id, trainer), ("job_id",))

    def metrics(self) -> dict[str, Any]:
        """What writing this buffer adds to the worker's counters (worker/metrics.py)."""
        if not self.epochs:
            return {}
        ms = np.fromiter((row[_DURATION] for row in self.epochs), np.float64)
        return {"epochs_trained": len(self.epochs), "epoch_seconds": histogram(ms / 1e3)}

    def clear(self) -> None:
        self.epochs.clear()
        self.snapshots.clear()
