"""The persisted data (DESIGN §4). Arrays are raw little-endian bytes, never JSON or pickle."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UtcDateTime, utcnow
from models.status import JobStatus

DEFAULT_OWNER = "default"


# VARCHAR(16) holding the enum's values (not its member names), as the first migration made it.
STATUS = Enum(
    JobStatus, native_enum=False, length=16, values_callable=lambda kind: [s.value for s in kind]
)


class Dataset(Base):
    """Training data, stored once per owner and content (sha256 of shapes and bytes)."""

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("owner", "sha256"),
        Index("ix_datasets_owner_created_at_id", "owner", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(100), default=DEFAULT_OWNER)
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    n_samples: Mapped[int]
    n_features: Mapped[int]
    n_outputs: Mapped[int]  # columns of y; 1 for a vector of labels or targets
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DatasetChunk(Base):
    """A data set's x or y, a run of rows at a time: float64 little-endian bytes, C order,
    whose concatenation in `seq` order is the array (models/datasets.py). Rows of their own
    rather than one blob column, so that a data set is written and read a chunk at a time."""

    __tablename__ = "dataset_chunks"

    dataset_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    part: Mapped[str] = mapped_column(String(1), primary_key=True)  # "x" or "y"
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Batch(Base):
    """A queued batch run: one job per point of the grid's cartesian product."""

    __tablename__ = "batches"
    __table_args__ = (
        Index("ix_batches_owner_created_at_id", "owner", "created_at", "id"),
        Index("uq_batches_owner_idempotency_key", "owner", "idempotency_key", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(100), default=DEFAULT_OWNER)
    name: Mapped[str] = mapped_column(String(200))
    base: Mapped[dict[str, Any]] = mapped_column(JSON)  # the job body every point starts from
    grid: Mapped[dict[str, list[Any]]] = mapped_column(JSON)  # dotted spec path → values
    # Sampled paths (tune/space.py): num_samples draws of these expand the grid, seeded by seed.
    space: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    num_samples: Mapped[int] = mapped_column(default=1, server_default="1")
    seed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # How its trials are stopped, paused, promoted or cloned (tune/schedulers.py), as validated.
    scheduler: Mapped[dict[str, Any]] = mapped_column(
        JSON, default=lambda: {"name": "fifo"}, server_default='{"name": "fifo"}'
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_sha256: Mapped[str | None] = mapped_column(String(64))  # of the body the key made


class Job(Base):
    """One training run; the row is the truth about it, the broker only says it has work."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN {tuple(s.value for s in JobStatus)}", name="status"),
        Index("ix_jobs_owner_created_at_id", "owner", "created_at", "id"),
        Index("ix_jobs_owner_final_loss_id", "owner", "final_loss", "id"),
        Index("ix_jobs_status_published_at", "status", "published_at"),
        Index("uq_jobs_owner_idempotency_key", "owner", "idempotency_key", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(100), default=DEFAULT_OWNER)
    name: Mapped[str] = mapped_column(String(200))
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # a TrainSpec, as JSON
    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("datasets.id"), index=True)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batches.id"), index=True)
    grid_point: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # its batch's values
    status: Mapped[JobStatus] = mapped_column(STATUS, default=JobStatus.QUEUED)
    epochs_total: Mapped[int]
    epochs_done: Mapped[int] = mapped_column(default=0)
    latest_loss: Mapped[float | None] = mapped_column(Float)
    best_loss: Mapped[float | None] = mapped_column(Float)
    final_loss: Mapped[float | None] = mapped_column(Float)
    # The health alerts of its run so far (backprop/rules.py), written with each flush.
    health: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
    error: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(default=0)  # the fencing token of the current lease
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_sha256: Mapped[str | None] = mapped_column(String(64))  # of the body the key made
    # A fork continues its parent's state after forked_at_epoch (api/forks.py); root_id is the
    # job at the top of its tree. All three are NULL for a job that is not a fork.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    forked_at_epoch: Mapped[int | None]
    root_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    # A trial of a batch with a scheduler: its index (a PBT clone takes its loser's), the epoch
    # its run pauses at (a rung; NULL: train to the end), and why the scheduler stopped it.
    trial: Mapped[int | None]
    stop_at: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(Text)


class JobAttempt(Base):
    """One claim of a job by a worker: when, by whom, with how many BLAS threads, and how it
    ended (succeeded, failed, cancelled, released at shutdown, lease expired, lease lost)."""

    __tablename__ = "job_attempts"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker: Mapped[str] = mapped_column(String(200))
    blas_threads: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reason: Mapped[str | None] = mapped_column(String(200))
    start_epoch: Mapped[int] = mapped_column(default=0)  # the checkpoint it resumed from


class JobTag(Base):
    """One `key: value` tag of a job, in a table of its own so tag filters use an index."""

    __tablename__ = "job_tags"
    __table_args__ = (Index("ix_job_tags_key_value", "key", "value"),)

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


# epoch_chunks and snapshot_chunks are the append-only history. A row holds what one flush of a
# worker wrote — every epoch since the last flush as packed columns, and the snapshots taken
# meanwhile as one blob — because the cost of a history write is per row (FACTS.md: a 2-core
# PostgreSQL saturated at ~120k epoch rows/s), not per value. They carry no foreign key: rows
# are inserted only in the transaction whose fenced UPDATE of the job row succeeded, and a
# job's history is deleted with the job, in one transaction (models/history.py).


def _per_layer(doc: str, *, nullable: bool = False) -> Any:
    """A per-layer epoch field: (n, L) float64, one value per layer l = 1..L for each epoch;
    a nullable one is NULL for a chunk in which no epoch has one (older chunks, a figure the
    network's activation has not)."""
    return mapped_column(LargeBinary, doc=doc, nullable=nullable, info={"per_layer": True})


def _field(doc: str, *, nullable: bool = False) -> Any:
    """An epoch field: n float64 values; NaN where an epoch has none, and NULL for a chunk in
    which no epoch has one (no validation split, l2 = 0)."""
    return mapped_column(LargeBinary, doc=doc, nullable=nullable)


class EpochChunk(Base):
    """Epochs first_epoch..last_epoch of a job (consecutive: n = last − first + 1), one packed
    column per epoch field, each n little-endian float64 values in epoch order. The columns
    after the key and last_epoch are the epoch fields everywhere: the worker fills them from the
    engine's EpochResult attributes of the same names, the history API serves them under these
    names (`EPOCH_FIELDS`), and each column's `doc` is its description in the OpenAPI document.
    Chunks of a job never overlap: a worker writes only epochs after the job's `epochs_done`."""

    __tablename__ = "epoch_chunks"

    job_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    first_epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_epoch: Mapped[int] = mapped_column(Integer)
    loss: Mapped[bytes] = _field(
        "The data cost C over the epoch's training rows: the sample-weighted mean of the "
        "losses of its mini-batches, each computed in that batch's forward pass. Without the L2 "
        "penalty (see penalised_loss)."
    )
    penalised_loss: Mapped[bytes | None] = _field(
        "loss plus the L2 penalty (λ/2n)·Σ_l ‖W^l‖², the cost the updates descend, with each "
        "mini-batch's penalty taken at the weights of its forward pass; null when l2 is 0.",
        nullable=True,
    )
    val_loss: Mapped[bytes | None] = _field(
        "The data cost on the validation rows after the epoch; null without them.", nullable=True
    )
    accuracy: Mapped[bytes | None] = _field(
        "Fraction of training rows classified right in the epoch's forward passes; null for mse.",
        nullable=True,
    )
    val_accuracy: Mapped[bytes | None] = _field(
        "Fraction of validation rows classified right after the epoch.", nullable=True
    )
    grad_norm_weights: Mapped[bytes] = _per_layer(
        "‖∂C/∂W^l‖ for l = 1..L at the epoch's last update (with the L2 term when l2 > 0)."
    )
    grad_norm_biases: Mapped[bytes] = _per_layer(
        "‖∂C/∂b^l‖ for l = 1..L at the epoch's last update."
    )
    learning_rate: Mapped[bytes] = _field("α used in the epoch.")
    duration_ms: Mapped[bytes] = _field("Wall time of the epoch in ms.")
    # Training health (backprop/health.py), measured as the engine trains the epoch.
    update_ratio_weights: Mapped[bytes | None] = _per_layer(
        "‖W^l after the epoch − W^l before it‖ / ‖W^l before it‖ (Frobenius) for l = 1..L: "
        "how far the epoch moved each layer's weights (CS231n: near 1e-3 is healthy).",
        nullable=True,
    )
    update_ratio_biases: Mapped[bytes | None] = _per_layer(
        "‖Δb^l‖ / ‖b^l before the epoch‖ for l = 1..L; NaN while ‖b^l‖ is 0.", nullable=True
    )
    dead_fraction: Mapped[bytes | None] = _per_layer(
        "Fraction of layer l's units that were dead in the epoch: a ReLU unit whose activation "
        "was 0 (leaky ReLU: negative) on every training row of the epoch's forward passes. "
        "NaN for layer L and for other activations.",
        nullable=True,
    )
    saturated_fraction: Mapped[bytes | None] = _per_layer(
        "Fraction of layer l's sigmoid or tanh units that were saturated in the epoch: σ'(z) "
        "below 1 % of σ's largest slope on at least 99 % of its training rows. NaN for layer "
        "L and for other activations.",
        nullable=True,
    )
    delta_mean: Mapped[bytes | None] = _per_layer(
        "Mean |δ^l| (eq. 8–9, per sample) over the epoch's last mini-batch, l = 1..L.",
        nullable=True,
    )
    delta_max: Mapped[bytes | None] = _per_layer(
        "Largest |δ^l| over the epoch's last mini-batch, l = 1..L.", nullable=True
    )
    nonfinite: Mapped[bytes | None] = _field(
        "1 when a NaN or infinity appeared in the epoch's parameters or error signals, else 0.",
        nullable=True,
    )


_KEY_COLUMNS = ("job_id", "first_epoch", "last_epoch")
EPOCH_FIELDS = tuple(c.name for c in EpochChunk.__table__.columns if c.name not in _KEY_COLUMNS)
PER_LAYER_FIELDS = frozenset(
    c.name for c in EpochChunk.__table__.columns if c.info.get("per_layer")
)


class SnapshotChunk(Base):
    """Snapshots of a job taken between first_epoch and last_epoch: `epochs` holds their epochs
    (`count` int32 values, ascending; 0 is the initial network) and `parameters` every θ
    (backprop/layout.py: W^1 … W^L column-major, then b^1 … b^L) in the spec's dtype,
    parameter-major: element i of θ at the m-th snapshot is value i·count + m. So one
    parameter's values across the chunk are one byte range, and a trajectory reads one substr
    per row, never a whole blob (the column is stored uncompressed on PostgreSQL for that)."""

    __tablename__ = "snapshot_chunks"

    job_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    first_epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_epoch: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    epochs: Mapped[bytes] = mapped_column(LargeBinary)
    parameters: Mapped[bytes] = mapped_column(LargeBinary)


class Checkpoint(Base):
    """A resumable state of a job: Trainer.state() as a JSON part and packed arrays, after
    `epoch`. Written every DELTAFLOW_CHECKPOINT_INTERVAL seconds and when a run ends, so the
    latest may lag the stored history; a worker resuming from it replays the epochs in between
    without storing them again (worker/runner.py). Every one is kept: they are the keyframes
    from which the state after any stored epoch is rebuilt for a fork (worker/forks.py)."""

    __tablename__ = "checkpoints"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(primary_key=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    arrays: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ApiKey(Base):
    """An API key: only its sha256 is kept, so a leaked table grants nothing. `prefix` (the
    key's first characters) lets people tell their keys apart in a list."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    owner: Mapped[str] = mapped_column(String(100))
    admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ProcessMetrics(Base):
    """The cumulative counters of one worker or reaper process (kind "worker" | "reaper"), and
    of processes long gone ("retired", one row the reaper folds stale rows into, so sums stay
    monotonic and the table small). Each process rewrites its own row — workers inside the
    flushes they already commit — and /metrics sums the rows at scrape time, so no process needs
    to be scraped on its own. `counters` maps names to numbers, to nested maps of numbers, or
    to histograms {"le": [bounds…], "counts": [per bucket, then +Inf], "sum": total}."""

    __tablename__ = "process_metrics"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # "<host>:<pid>:<random>"
    kind: Mapped[str] = mapped_column(String(16))
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    counters: Mapped[dict[str, Any]] = mapped_column(JSON)


def add_counters(total: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """`total` plus `more` (ProcessMetrics.counters), as a new dict. A histogram whose bounds
    differ from the total's (a fleet mid-deploy across a change of buckets) is left out, as
    buckets cannot be re-cut."""
    out = dict(total)
    for name, value in more.items():
        mine = out.get(name)
        if mine is None:
            out[name] = value
        elif isinstance(value, dict) and "counts" in value:
            if mine["le"] == value["le"]:
                counts = [a + b for a, b in zip(mine["counts"], value["counts"], strict=True)]
                out[name] = {"le": mine["le"], "counts": counts, "sum": mine["sum"] + value["sum"]}
        elif isinstance(value, dict):
            out[name] = add_counters(mine, value)
        else:
            out[name] = mine + value
    return out
