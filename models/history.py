"""A job's stored history: epochs and snapshots, one row per flush (models/tables.py).

    epoch_chunks     (job, first_epoch) → last_epoch, one packed column per epoch field
    snapshot_chunks  (job, first_epoch) → last_epoch, count, epochs, θ of each (parameter-major)

Writing: a flush adds one epoch chunk and a few snapshot chunks, whatever its number of epochs,
so the database's per-row work no longer grows with the training speed. Reading: a range of
epochs is the chunks that overlap it, cut to it; a trajectory is one byte range per snapshot
chunk (`substr`, uncompressed on PostgreSQL so that only those bytes are read); a snapshot is
one column of one chunk's (P, count) matrix. The epoch-0 snapshot is a chunk of its own, so a
worker that starts a job again may write it again and the insert is ignored as a repeat.

A fork's history is its ancestors' epochs up to the fork then its own (models/lineage.py): the
readers take its segments and read each where it is stored.

Functions add statements to the caller's transaction; they never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
from sqlalchemy import delete as sa_delete
from sqlalchemy.orm import Session

from models.bulk import insert_ignore, query
from models.lineage import MAX_EPOCH, Segment
from models.tables import EPOCH_FIELDS, PER_LAYER_FIELDS, EpochChunk, SnapshotChunk

CHUNK_BYTES = 1 << 20  # parameters per snapshot chunk, at most (or one snapshot, if larger)
EPOCHS_PER_CHUNK = 10_000  # a flush of a fast job writes several (XOR trains ~30,000 a second)
F8 = np.dtype("<f8")
I4 = np.dtype("<i4")
_EPOCH_KEYS = ("job_id", "first_epoch")
_NULLABLE = {name: EpochChunk.__table__.c[name].nullable for name in EPOCH_FIELDS}
# A job's history is its id (its own epochs) or the segments models.lineage.segments gives.
History = uuid.UUID | Sequence[Segment]
_SNAPSHOT_COLUMNS = ("job_id", "first_epoch", "last_epoch", "count", "epochs", "parameters")


def write_epochs(s: Session, job_id: uuid.UUID, first: int, columns: dict[str, np.ndarray]) -> None:
    """Store epochs first, first + 1, … with `columns` (every EPOCH_FIELDS name → n float64
    values, or (n, L) for the per-layer fields; NaN where an epoch has no value), at most
    EPOCHS_PER_CHUNK per row: a page of a long history then reads a bounded row."""
    n = len(columns["loss"])
    rows = []
    for start in range(0, n, EPOCHS_PER_CHUNK):
        part = slice(start, min(n, start + EPOCHS_PER_CHUNK))
        values = [_pack(name, columns[name][part]) for name in EPOCH_FIELDS]
        rows.append((job_id, first + start, first + part.stop - 1, *values))
    insert_ignore(s, "epoch_chunks", (*_EPOCH_KEYS, "last_epoch", *EPOCH_FIELDS), _EPOCH_KEYS, rows)


def _pack(name: str, values: np.ndarray) -> bytes | None:
    if _NULLABLE[name] and np.isnan(values).all():
        return None  # a field no epoch of the chunk has (no validation split, l2 = 0)
    return np.ascontiguousarray(values, dtype=F8).tobytes()


def write_snapshots(
    s: Session, job_id: uuid.UUID, epochs: Sequence[int], thetas: np.ndarray
) -> None:
    """Store θ after each of `epochs` (ascending): `thetas` of shape (len(epochs), P), split into
    chunks of at most CHUNK_BYTES of parameters; epoch 0 always in a chunk of its own."""
    if not len(epochs):
        return
    at = np.asarray(epochs, dtype=I4)
    per_chunk = max(1, CHUNK_BYTES // max(1, thetas[0].nbytes))
    starts = [0, 1] if at[0] == 0 else [0]
    starts += list(range(starts[-1] + per_chunk, len(at), per_chunk))
    rows = []
    for start, stop in zip(starts, [*starts[1:], len(at)], strict=True):
        if start >= stop:
            continue
        block = thetas[start:stop]
        matrix = np.ascontiguousarray(block.T).tobytes()  # parameter-major: row i is θ_i
        epochs_bytes = at[start:stop].tobytes()
        rows.append((job_id, int(at[start]), int(at[stop - 1]), stop - start, epochs_bytes, matrix))
    insert_ignore(s, "snapshot_chunks", _SNAPSHOT_COLUMNS, _EPOCH_KEYS, rows)


def epoch_columns(
    s: Session,
    where: History,
    fields: Sequence[str],
    n_layers: int,
    *,
    first: int = 1,
    last: int | None = None,
    limit: int | None = None,
) -> dict[str, np.ndarray]:
    """Epochs first..last (the first `limit` of them) as columns: "epoch" (int64), each field
    as float64 with NaN for a missing value, the per-layer fields as (n, L) arrays."""
    upper = last if last is not None else MAX_EPOCH
    parts: list[dict[str, np.ndarray]] = []
    for seg in _segments(where):
        lo, hi = max(first, seg.first), min(upper, seg.last)
        left = None if limit is None else limit - sum(int(p["epoch"].size) for p in parts)
        if lo <= hi and (left is None or left > 0):
            parts.append(_columns(s, seg.job_id, fields, n_layers, lo, hi, left))
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return _decode([], fields, n_layers)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _columns(
    s: Session, job_id: uuid.UUID, fields: Sequence[str], n_layers: int, first: int, last: int,
    limit: int | None,
) -> dict[str, np.ndarray]:  # fmt: skip
    spans = query(
        s,
        "SELECT first_epoch, last_epoch FROM epoch_chunks WHERE job_id = %s "
        "AND last_epoch >= %s AND first_epoch <= %s ORDER BY first_epoch",
        (job_id, first, last),
    )
    spans = _enough(spans, first, limit)
    columns = ", ".join(["first_epoch", "last_epoch", *fields])
    rows = query(
        s,
        f"SELECT {columns} FROM epoch_chunks WHERE job_id = %s "
        "AND first_epoch >= %s AND first_epoch <= %s ORDER BY first_epoch",
        (job_id, spans[0][0], spans[-1][0]),
    ) if spans else []  # fmt: skip
    out = _decode(rows, fields, n_layers)
    keep = (out["epoch"] >= first) & (out["epoch"] <= last)
    return {k: v[keep][:limit] for k, v in out.items()}


def _enough(spans: list[tuple], first: int, limit: int | None) -> list[tuple]:
    """The leading spans that hold `limit` epochs from `first` on (all of them without one)."""
    if limit is None:
        return spans
    held = 0
    for i, (lo, hi) in enumerate(spans):
        held += hi - max(lo, first) + 1
        if held >= limit:
            return spans[: i + 1]
    return spans


def _decode(rows: list[tuple], fields: Sequence[str], n_layers: int) -> dict[str, np.ndarray]:
    counts = [hi - lo + 1 for lo, hi, *_ in rows]
    epochs = [np.arange(lo, hi + 1, dtype=np.int64) for lo, hi, *_ in rows]
    out = {"epoch": np.concatenate(epochs) if rows else np.empty(0, np.int64)}
    for i, name in enumerate(fields, start=2):
        shape = (-1, n_layers) if name in PER_LAYER_FIELDS else (-1,)
        parts = [
            np.frombuffer(row[i], F8).reshape(shape)
            if row[i] is not None
            else np.full((n, *shape[1:]), np.nan)
            for row, n in zip(rows, counts, strict=True)
        ]
        out[name] = np.concatenate(parts) if parts else np.empty((0, *shape[1:]))
    return out


def many_epoch_columns(
    s: Session,
    wheres: dict[uuid.UUID, History],
    fields: Sequence[str],
    n_layers: dict[uuid.UUID, int],
    *,
    first: int = 1,
    last: int | None = None,
) -> dict[uuid.UUID, dict[str, np.ndarray]]:
    """epoch_columns of several jobs (each its own id or a fork's segments) from one query:
    every chunk of the jobs their segments name that overlaps first..last, in key order (the
    primary key (job_id, first_epoch) serves it), then cut per segment in numpy."""
    upper = last if last is not None else MAX_EPOCH
    stored_ids = sorted({seg.job_id for w in wheres.values() for seg in _segments(w)}, key=str)
    marks = ", ".join(["%s"] * len(stored_ids))
    columns = ", ".join(["job_id", "first_epoch", "last_epoch", *fields])
    rows = query(
        s,
        f"SELECT {columns} FROM epoch_chunks WHERE job_id IN ({marks}) "
        "AND last_epoch >= %s AND first_epoch <= %s ORDER BY job_id, first_epoch",
        (*stored_ids, first, upper),
    ) if stored_ids else []  # fmt: skip
    by_job: dict[uuid.UUID, list[tuple]] = {}
    for row in rows:  # one row a chunk: a few per job, not one per epoch
        key = row[0] if isinstance(row[0], uuid.UUID) else uuid.UUID(str(row[0]))
        by_job.setdefault(key, []).append(row[1:])
    out = {}
    for job_id, where in wheres.items():
        parts = []
        for seg in _segments(where):
            lo, hi = max(first, seg.first), min(upper, seg.last)
            if lo <= hi:
                cols = _decode(by_job.get(seg.job_id, []), fields, n_layers[job_id])
                keep = (cols["epoch"] >= lo) & (cols["epoch"] <= hi)
                parts.append({k: v[keep] for k, v in cols.items()})
        if len(parts) == 1:
            out[job_id] = parts[0]
        elif parts:
            out[job_id] = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        else:
            out[job_id] = _decode([], fields, n_layers[job_id])
    return out


def epoch_count(s: Session, job_id: uuid.UUID) -> tuple[int, int | None, int | None, int]:
    """(epochs stored, the first, the last, chunks holding them) for the job."""
    row = query(
        s,
        "SELECT sum(last_epoch - first_epoch + 1), min(first_epoch), max(last_epoch), count(*) "
        "FROM epoch_chunks WHERE job_id = %s",
        (job_id,),
    )[0]
    return int(row[0] or 0), row[1], row[2], int(row[3])


def snapshot_epochs(s: Session, where: History, *, after: int = -1, limit: int) -> list[int]:
    """The first `limit` snapshot epochs after `after`, ascending."""
    found: list[int] = []
    for seg in _segments(where):
        if seg.last <= after or len(found) >= limit:
            continue
        rows = query(
            s,
            "SELECT epochs FROM snapshot_chunks WHERE job_id = %s AND last_epoch > %s "
            "AND first_epoch <= %s ORDER BY first_epoch LIMIT %s",
            (
                seg.job_id,
                max(after, seg.first - 1),
                seg.last,
                limit,
            ),  # a snapshot a chunk, at least
        )
        found += _within(rows, max(after + 1, seg.first), seg.last)[: limit - len(found)]
    return found


def _within(rows: list[tuple], lo: int, hi: int) -> list[int]:
    """The epochs of snapshot chunks' `epochs` columns (each row's first) in lo..hi."""
    if not rows:
        return []
    epochs = np.concatenate([np.frombuffer(r[0], I4) for r in rows])
    return [int(e) for e in epochs[(epochs >= lo) & (epochs <= hi)]]


def snapshot(
    s: Session, where: History, epoch: int | None, dtype: np.dtype
) -> tuple[int, np.ndarray]:
    """(epoch, θ) of the snapshot at `epoch` (None: the latest); KeyError if there is none.
    One chunk per segment tried: the last that starts at or before the epoch wanted."""
    for seg in reversed(_segments(where)):
        if epoch is not None and not seg.first <= epoch <= seg.last:
            continue
        upto = seg.last if epoch is None else epoch
        rows = query(
            s,
            "SELECT count, epochs, parameters FROM snapshot_chunks WHERE job_id = %s "
            "AND first_epoch <= %s ORDER BY first_epoch DESC LIMIT 1",
            (seg.job_id, upto),
        )
        if rows:
            count, epochs_bytes, parameters = rows[0]
            epochs = np.frombuffer(epochs_bytes, I4)
            m = int(np.searchsorted(epochs, upto, side="right")) - 1
            found = m >= 0 and epochs[m] >= seg.first and (epoch is None or epochs[m] == epoch)
            if found:
                matrix = np.frombuffer(parameters, dtype.newbyteorder("<")).reshape(-1, count)
                return int(epochs[m]), matrix[:, m].copy()
        if epoch is not None:
            break
    raise KeyError(epoch)


def nearest_snapshots(s: Session, where: History, epoch: int) -> list[int]:
    """The snapshot epochs nearest to `epoch` below and above it (those that exist)."""
    below = above = None
    for seg in reversed(_segments(where)):
        if below is None and seg.first < epoch:
            rows = query(
                s,
                "SELECT epochs FROM snapshot_chunks WHERE job_id = %s AND first_epoch < %s "
                "ORDER BY first_epoch DESC LIMIT 1",
                (seg.job_id, min(epoch, seg.last + 1)),
            )
            found = _within(rows, seg.first, min(epoch - 1, seg.last))
            below = found[-1] if found else None
    for seg in _segments(where):
        if above is None and seg.last > epoch:
            rows = query(
                s,
                "SELECT epochs FROM snapshot_chunks WHERE job_id = %s AND last_epoch > %s "
                "ORDER BY first_epoch LIMIT 1",
                (seg.job_id, max(epoch, seg.first - 1)),
            )
            found = _within(rows, max(epoch + 1, seg.first), seg.last)
            above = found[0] if found else None
    return [e for e in (below, above) if e is not None]


def trajectory(s, where: History, dtype: np.dtype, index: int) -> tuple[list[int], list[float]]:
    """Element `index` of θ at every snapshot: one substr per chunk, the parameter's values
    across that chunk, so whole snapshots are never read."""
    size = dtype.itemsize
    epochs, values = [], []
    for seg in _segments(where):
        rows = query(
            s,
            "SELECT epochs, substr(parameters, CAST(%s * count + 1 AS INTEGER), "
            "CAST(%s * count AS INTEGER)) FROM snapshot_chunks WHERE job_id = %s "
            "AND last_epoch >= %s AND first_epoch <= %s ORDER BY first_epoch",
            (index * size, size, seg.job_id, seg.first, seg.last),
        )
        at = np.frombuffer(b"".join(r[0] for r in rows), I4)
        value = np.frombuffer(b"".join(r[1] for r in rows), dtype.newbyteorder("<"))
        keep = (at >= seg.first) & (at <= seg.last)
        epochs += at[keep].tolist()
        values += value[keep].tolist()
    return epochs, values


def _segments(where: History) -> Sequence[Segment]:
    """A job's own history is one segment; a fork's, its ancestors' then its own."""
    if isinstance(where, uuid.UUID):
        return (Segment(where, 0, MAX_EPOCH),)
    return where


def delete(s: Session, job_id: uuid.UUID) -> None:
    """Every epoch and snapshot of the job."""
    for table in (EpochChunk, SnapshotChunk):
        s.execute(sa_delete(table).where(table.job_id == job_id))
