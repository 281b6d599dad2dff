"""Turning engine output into rows: the flush buffer, and the codecs for data and checkpoints."""

from __future__ import annotations

import struct
import sys
import uuid
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from backprop import EpochResult, Trainer
from models.arrays import pack, to_bytes, unpack
from models.base import utcnow
from models.bulk import insert_ignore_rows, upsert
from models.tables import Checkpoint, Epoch, Snapshot
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


_NATIVE_LE = sys.byteorder == "little"  # then the engine's arrays are stored as they are


def _norms(values: list[float]) -> bytes:
    """float64 little-endian bytes; struct is several times faster than numpy for a few values."""
    return struct.pack(f"<{len(values)}d", *values)


class FlushBuffer:
    """What a worker has trained but not yet written: epoch rows and snapshots."""

    def __init__(self, spec: dict[str, Any], best_loss: float | None) -> None:
        self.snapshot_every = int(spec.get("snapshot_every", 1))
        # Tuples in the tables' column order, after job_id (see models.bulk).
        self.epochs: list[tuple[Any, ...]] = []
        self.snapshots: list[tuple[Any, ...]] = []
        self.best_loss = best_loss
        self.last_loss: float | None = None
        self._last_snapshot = -1

    def add(self, r: EpochResult, trainer: Trainer) -> None:
        self.epochs.append(
            (
                r.epoch,
                r.loss,
                r.val_loss,
                r.accuracy,
                r.val_accuracy,
                _norms(r.grad_norm_weights),
                _norms(r.grad_norm_biases),
                r.learning_rate,
                r.duration_ms,
            )
        )
        watched = r.loss if r.val_loss is None else r.val_loss
        if self.best_loss is None or watched < self.best_loss:
            self.best_loss = watched
        self.last_loss = r.loss
        if r.epoch % self.snapshot_every == 0:
            self.add_snapshot(r.epoch, trainer)

    def add_snapshot(self, epoch: int, trainer: Trainer) -> None:
        """Every W^l and b^l as they are now, in the snapshot layout (models.arrays.Layout)."""
        if epoch == self._last_snapshot:
            return
        net = trainer.network
        self.snapshots.append(
            (epoch, net.parameters_bytes() if _NATIVE_LE else to_bytes(net.theta))
        )
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
        insert_ignore_rows(s, Epoch.__table__, job_id, self.epochs)
        insert_ignore_rows(s, Snapshot.__table__, job_id, self.snapshots)
        if trainer is not None:
            upsert(s, Checkpoint, checkpoint_values(job_id, trainer), ("job_id",))

    def metrics(self) -> dict[str, Any]:
        """What writing this buffer adds to the worker's counters (worker/metrics.py)."""
        if not self.epochs:
            return {}
        ms = np.fromiter((row[-1] for row in self.epochs), np.float64)  # duration_ms, last
        return {"epochs_trained": len(self.epochs), "epoch_seconds": histogram(ms / 1e3)}

    def clear(self) -> None:
        self.epochs.clear()
        self.snapshots.clear()
