"""History queries: epochs by range and fields, even downsampling, snapshots, parameter
trajectories.

Epochs are read as numpy columns (models.bulk.epoch_columns) and encoded by orjson straight
from the arrays: a 100,000-epoch history is one query and no Python object per value.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException
from sqlalchemy import LargeBinary, func, select
from sqlalchemy.orm import Session

from api.errors import unprocessable
from api.fields import MAX_EPOCH
from backprop.layout import Layout
from backprop.spec import TrainSpec
from models.arrays import from_bytes
from models.bulk import epoch_columns
from models.tables import EPOCH_FIELDS, Snapshot

FIELDS = EPOCH_FIELDS


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
    session: Session, job_id: uuid.UUID, dtype: np.dtype, index: int
) -> tuple[list[int], list[float]]:
    """Element `index` of θ (backprop/layout.py) at every snapshot epoch, read in SQL with one
    substr per row, so whole snapshots are never loaded."""
    size = dtype.itemsize
    piece = func.substr(Snapshot.parameters, index * size + 1, size, type_=LargeBinary)
    rows = session.execute(
        select(Snapshot.epoch, piece).where(Snapshot.job_id == job_id).order_by(Snapshot.epoch)
    ).all()
    values = np.frombuffer(b"".join(bytes(r[1]) for r in rows), dtype)
    return [r[0] for r in rows], values.tolist()


def parameter_index(layout: Layout, layer: int, param: str, k: int, j: int | None) -> int:
    """The position of w^l_kj or b^l_k in θ; 422 naming the valid range when out of it."""
    sizes = layout.sizes
    if not 1 <= layer <= layout.L:
        raise unprocessable(["query", "layer"], f"layer must be 1..{layout.L}, got {layer}")
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


def parameters(spec: TrainSpec, blob: bytes) -> tuple[Layout, np.ndarray]:
    """A snapshot's θ as an array, with its layout."""
    layout = Layout(spec.network.layers)
    return layout, from_bytes(blob, spec.dtype, (layout.size,))


def snapshot(session: Session, job_id: uuid.UUID, epoch: int | None) -> Snapshot:
    """The job's snapshot at `epoch` (None: the latest), or 404 naming the nearest epochs."""
    query = select(Snapshot).where(Snapshot.job_id == job_id)
    if epoch is None:
        row = session.scalar(query.order_by(Snapshot.epoch.desc()).limit(1))
    elif epoch > MAX_EPOCH:  # past the INTEGER column: PostgreSQL would refuse the query
        row = None
    else:
        row = session.scalar(query.where(Snapshot.epoch == epoch))
    if row is None:
        raise HTTPException(404, detail=_no_snapshot(session, job_id, epoch))
    return row


def _no_snapshot(session: Session, job_id: uuid.UUID, epoch: int | None) -> str:
    """Names the nearest snapshot epochs rather than listing them: a job may have millions."""
    nearest = []
    if epoch is not None:
        of_job, at, bound = Snapshot.job_id == job_id, Snapshot.epoch, min(epoch, MAX_EPOCH)
        below = session.scalar(select(func.max(at)).where(of_job, at < bound))
        above = session.scalar(select(func.min(at)).where(of_job, at > bound))
        nearest = [str(e) for e in (below, above) if e is not None]
    if not nearest:
        return f"job {job_id} has no snapshot yet"
    return (
        f"job {job_id} has no snapshot at epoch {epoch}; the nearest are at epoch "
        f"{' and '.join(nearest)} (GET /v1/jobs/{job_id}/snapshots lists them all)"
    )
