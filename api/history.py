"""History queries: epochs by range and fields, even downsampling, parameter trajectories.

Epochs are read as numpy columns (models.bulk.epoch_columns) and encoded by orjson straight
from the arrays: a 100,000-epoch history is one query and no Python object per value.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from sqlalchemy import LargeBinary, func, select
from sqlalchemy.orm import Session

from api.errors import unprocessable
from models.arrays import Layout
from models.bulk import epoch_columns
from models.tables import Snapshot

FIELDS = (
    "loss",
    "val_loss",
    "accuracy",
    "val_accuracy",
    "grad_norm_weights",
    "grad_norm_biases",
    "learning_rate",
    "duration_ms",
)


def parse_fields(fields: str | None) -> list[str]:
    """The comma-separated `fields` parameter, checked against the columns that exist."""
    if not fields:
        return list(FIELDS)
    chosen = [f.strip() for f in fields.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FIELDS and f != "epoch"]
    if unknown or not chosen:
        raise unprocessable(
            ["query", "fields"],
            f"unknown field(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(FIELDS)}",
        )
    return [f for f in FIELDS if f in chosen]


@dataclass
class EpochRange:
    job_id: uuid.UUID
    n_layers: int
    start: int
    end: int | None


def read_columns(
    session: Session, rng: EpochRange, fields: list[str], *, after: int = 0, limit: int
) -> tuple[dict[str, np.ndarray], bool]:
    """Up to `limit` epochs of the range after `after`, as columns; and whether more follow."""
    cols = epoch_columns(
        session, rng.job_id, fields, rng.n_layers,
        first=max(rng.start, after + 1), last=rng.end, limit=limit + 1,
    )  # fmt: skip
    more = len(cols["epoch"]) > limit
    return {k: v[:limit] for k, v in cols.items()}, more


def downsample(session: Session, rng: EpochRange, points: int, fields: list[str]):
    """At most `points` epochs of the range, evenly spread, always holding the first, the last,
    the minimum-loss and the maximum-loss epoch, as columns; and how many the range holds."""
    losses = epoch_columns(
        session, rng.job_id, ["loss"], rng.n_layers, first=rng.start, last=rng.end
    )
    epochs, count = losses["epoch"], len(losses["epoch"])
    if count <= points:
        chosen = epochs
    else:
        extremes = {int(epochs[losses["loss"].argmin()]), int(epochs[losses["loss"].argmax()])}
        # linspace's ends are the first and last epochs; the extremes take what is left.
        slots = points - len(extremes - {int(epochs[0]), int(epochs[-1])})
        spread = epochs[np.rint(np.linspace(0, count - 1, slots)).astype(int)]
        chosen = np.array(sorted(set(spread.tolist()) | extremes))
    cols = epoch_columns(session, rng.job_id, fields, rng.n_layers, only=chosen.tolist())
    return cols, count


def trajectory(
    session: Session, job_id: uuid.UUID, layout: Layout, index: int
) -> tuple[list[int], list[float]]:
    """Parameter `index` of the snapshot layout at every snapshot epoch, read in SQL with one
    substr per row, so whole snapshots are never loaded."""
    size = layout.dtype.itemsize
    piece = func.substr(Snapshot.parameters, index * size + 1, size, type_=LargeBinary)
    rows = session.execute(
        select(Snapshot.epoch, piece).where(Snapshot.job_id == job_id).order_by(Snapshot.epoch)
    ).all()
    values = np.frombuffer(b"".join(bytes(r[1]) for r in rows), layout.dtype)
    return [r[0] for r in rows], values.tolist()


def parameter_index(layout: Layout, layer: int, param: str, k: int, j: int | None) -> int:
    """The position of w^l_kj or b^l_k; 422 naming the valid range when out of it."""
    sizes = layout.sizes
    if not 1 <= layer <= layout.n_layers:
        raise unprocessable(["query", "layer"], f"layer must be 1..{layout.n_layers}, got {layer}")
    if not 0 <= k < sizes[layer]:
        raise unprocessable(
            ["query", "k"], f"k must be 0..{sizes[layer] - 1} (n_{layer} = {sizes[layer]}), got {k}"
        )
    if param == "bias":
        if j is not None:
            raise unprocessable(["query", "j"], "a bias b^l_k has no j; leave j out")
        return layout.bias_index(layer, k)
    n_in = sizes[layer - 1]
    if j is None or not 0 <= j < n_in:
        raise unprocessable(
            ["query", "j"], f"j must be 0..{n_in - 1} (n_{layer - 1} = {n_in}), got {j}"
        )
    return layout.weight_index(layer, k, j)
