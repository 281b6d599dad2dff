"""History queries: epochs by range and fields, even downsampling, snapshots, parameter
trajectories.

Epochs are read as numpy columns (models/history.py: one stored row per flush, each field a
packed array) and encoded by orjson straight from the arrays: a 100,000-epoch history is a few
rows and no Python object per value.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException
from sqlalchemy.orm import Session

from api.errors import unprocessable
from api.fields import MAX_EPOCH
from backprop.layout import Layout
from backprop.spec import TrainSpec
from models import history as stored
from models import lineage
from models.tables import EPOCH_FIELDS, Job

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
    where: stored.History  # the job's id, or a fork's segments (models/lineage.py)
    n_layers: int
    start: int
    end: int | None


def read_columns(
    session: Session, rng: EpochRange, fields: list[str], *, after: int = 0, limit: int
) -> tuple[dict[str, np.ndarray], bool]:
    """Up to `limit` epochs of the range after `after`, as columns; and whether more follow."""
    cols = stored.epoch_columns(
        session, rng.where, fields, rng.n_layers,
        first=max(rng.start, after + 1), last=rng.end, limit=limit + 1,
    )  # fmt: skip
    more = len(cols["epoch"]) > limit
    return {k: v[:limit] for k, v in cols.items()}, more


def downsample(session: Session, rng: EpochRange, points: int, fields: list[str]):
    """At most `points` epochs of the range, evenly spread, always holding the first, the last,
    the minimum-loss and the maximum-loss epoch, as columns; and how many the range holds."""
    wanted = fields if "loss" in fields else [*fields, "loss"]
    cols = stored.epoch_columns(
        session, rng.where, wanted, rng.n_layers, first=rng.start, last=rng.end
    )
    count = len(cols["epoch"])
    if count > points:
        chosen = thin(cols["loss"], points)
        cols = {k: v[chosen] for k, v in cols.items()}
    return {k: v for k, v in cols.items() if k == "epoch" or k in fields}, count


def thin(value: np.ndarray, points: int) -> np.ndarray:
    """Indices of at most `points` of the values, evenly spread, always holding the first, the
    last and the extremes — a line drawn from them keeps its shape and its range."""
    count = len(value)
    if count <= points:
        return np.arange(count)
    finite = np.flatnonzero(np.isfinite(value))
    extremes = set()
    if finite.size:
        extremes = {int(finite[value[finite].argmin()]), int(finite[value[finite].argmax()])}
    # linspace's ends are the first and last; the extremes take what is left.
    slots = points - len(extremes - {0, count - 1})
    spread = np.rint(np.linspace(0, count - 1, slots)).astype(int)
    return np.array(sorted(set(spread.tolist()) | extremes))


def whole(
    session: Session, rng: EpochRange, fields: list[str], points: int | None
) -> tuple[dict[str, np.ndarray], int]:
    """The range in one piece (the Arrow and Parquet answers, which have no pages), or its
    downsample to `points`; and how many epochs the range holds."""
    if points is not None:
        return downsample(session, rng, points, fields)
    cols = stored.epoch_columns(
        session, rng.where, fields, rng.n_layers, first=max(rng.start, 1), last=rng.end
    )
    return cols, len(cols["epoch"])


def n_layers(job: Job) -> int:
    """L, the job's number of weight layers: the width of its per-layer fields. Read from the
    stored spec as it is (a validated TrainSpec's dump): validating 10,000 TrainSpecs for a
    many-job export would cost seconds."""
    return len(job.spec["network"]["layers"]) - 1


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


def snapshot(
    session: Session, job: Job, spec: TrainSpec, epoch: int | None, *, own: bool = False
) -> tuple[int, np.ndarray]:
    """(epoch, θ) of the job's snapshot at `epoch` (None: the latest), or 404 naming the
    nearest epochs. A fork's history includes its parent's up to the fork unless `own`."""
    where = lineage.segments(session, job, own=own)
    try:
        if epoch is not None and epoch > MAX_EPOCH:  # past the INTEGER column
            raise KeyError(epoch)
        return stored.snapshot(session, where, epoch, np.dtype(spec.dtype))
    except KeyError:
        raise HTTPException(404, detail=_no_snapshot(session, job.id, where, epoch)) from None


def _no_snapshot(
    session: Session, job_id: uuid.UUID, where: stored.History, epoch: int | None
) -> str:
    """Names the nearest snapshot epochs rather than listing them: a job may have millions."""
    nearest = []
    if epoch is not None:
        found = stored.nearest_snapshots(session, where, min(epoch, MAX_EPOCH))
        nearest = [str(e) for e in found]
    if not nearest:
        return f"job {job_id} has no snapshot yet"
    return (
        f"job {job_id} has no snapshot at epoch {epoch}; the nearest are at epoch "
        f"{' and '.join(nearest)} (GET /v1/jobs/{job_id}/snapshots lists them all)"
    )
