"""HTTP shapes. Request models forbid unknown fields; a job body is a TrainSpec plus a name,
tags and where the data comes from."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from api.dataref import DatasetRef
from api.fields import Epoch, Label, Name, RequestModel, Row, Tags, Targets
from backprop.spec import TrainSpec
from models.status import JobStatus
from models.tables import EPOCH_FIELDS, PER_LAYER_FIELDS, EpochChunk
from tune.schedulers import Fifo, Scheduler
from tune.space import Space

T = TypeVar("T")


# The seed's example, in the OpenAPI document: for readers, and for the fuzzer to start from.
XOR_X = [[0, 0], [0, 1], [1, 0], [1, 1]]
XOR = {"name": "xor", "network": {"layers": [2, 4, 1]}, "optimizer": {"learning_rate": 2.0},
       "epochs": 500, "snapshot_every": 100, "dataset": {"builtin": "xor"}}  # fmt: skip


class JobCreate(TrainSpec):
    """POST /v1/jobs: every TrainSpec field, plus name, tags and dataset."""

    model_config = ConfigDict(json_schema_extra={"examples": [XOR]})

    name: Name = "job"
    tags: Tags = Field(default_factory=dict)
    dataset: DatasetRef

    def spec(self) -> TrainSpec:
        return TrainSpec.model_validate(self.model_dump(exclude={"name", "tags", "dataset"}))


class HealthAlert(BaseModel):
    """A health rule that fired (backprop/rules.py; thresholds in the spec's `health`)."""

    rule: str = Field(description="dead_units, saturated_units, update_ratio, nonfinite or "
                      "plateau.")  # fmt: skip
    layer: int | None = Field(description="l = 1..L; null for the network as a whole.")
    since: int = Field(description="The first epoch of the run of epochs in which it held.")
    epoch: int = Field(description="The last epoch in which it held.")
    active: bool = Field(description="It held in the job's latest epoch.")
    message: str = Field(examples=["layer 1: 63 of 128 units dead since epoch 1"])


class JobOut(BaseModel):
    id: uuid.UUID
    name: str
    status: JobStatus
    epochs_done: int
    epochs_total: int
    latest_loss: float | None
    best_loss: float | None
    final_loss: float | None
    error: str | None
    attempt: int
    tags: dict[str, str]
    dataset_id: uuid.UUID
    batch_id: uuid.UUID | None
    grid_point: dict[str, Any] | None
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    parent_id: uuid.UUID | None = Field(description="The job this one was forked from.")
    forked_at_epoch: int | None = Field(description="The parent's epoch it continues from.")
    root_id: uuid.UUID | None = Field(description="The first job of its tree of forks.")
    trial: int | None = Field(None, description="Its index in a batch with a scheduler.")
    stop_at: int | None = Field(None, description="The epoch its run pauses at (a rung).")
    reason: str | None = Field(
        None, description="Why it was stopped: its batch's scheduler, or a rule of stop_when."
    )
    health: Annotated[list[HealthAlert], BeforeValidator(lambda v: v or [])] = Field(
        default_factory=list, description="The health alerts of its run, in the order they fired."
    )

    model_config = ConfigDict(from_attributes=True)


class AttemptOut(BaseModel):
    """One claim of the job by a worker, and how it ended."""

    attempt: int = Field(description="1, 2, … in the order workers claimed the job.")
    worker: str
    blas_threads: int
    start_epoch: int = Field(description="The checkpoint it resumed from (0: a fresh start).")
    started_at: datetime
    ended_at: datetime | None
    reason: str | None = Field(
        description="succeeded, cancelled, the error, 'lease expired' (the worker stopped "
        "renewing its lease: killed or cut off) or 'released: …' (a worker shutting down)"
    )

    model_config = ConfigDict(from_attributes=True)


class JobDetail(JobOut):
    attempts: list[AttemptOut]


def _epoch_out() -> type[BaseModel]:
    """One epoch's fields as the history API sends them: the epoch fields of the stored history,
    described by their docs there (models/tables.py), each present when `fields` chose it."""
    fields: dict[str, Any] = {"epoch": (int, Field(description="The epoch, 1, 2, …"))}
    for name in EPOCH_FIELDS:
        kind = list[float | None] if name in PER_LAYER_FIELDS else float  # None: NaN
        doc = EpochChunk.__table__.columns[name].doc
        fields[name] = (kind | None, Field(None, description=doc))
    return create_model("EpochOut", **fields)


EpochOut = _epoch_out()


class BatchCreate(RequestModel):
    """POST /v1/batches: one job per point of the grid's cartesian product."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "lr", "base": XOR, "grid": {"seed": [1, 2]}}]}
    )

    name: Name
    base: JobCreate = Field(description="A job body, as for POST /v1/jobs.")
    grid: dict[Annotated[str, Field(max_length=100)], list[Any]] = Field(
        default_factory=dict,
        max_length=20,
        description='Spec paths to values, e.g. {"optimizer.learning_rate": [0.5, 0.1]}.',
    )
    space: Space = Field(
        default_factory=dict,
        max_length=20,
        description="Spec paths to distributions, sampled for every point: {choice: [...]}, "
        "{uniform: [low, high]}, {loguniform: [low, high]}, {randint: [low, high]}.",
        examples=[{"optimizer.learning_rate": {"loguniform": [1e-4, 1e-1]}}],
    )
    num_samples: int = Field(
        1, ge=1, le=100_000, description="Samples of the space; each expands the whole grid."
    )
    seed: int = Field(0, ge=0, lt=2**63, description="Seeds the draws: same body, same points.")
    scheduler: Scheduler = Field(
        default_factory=lambda: Fifo(name="fifo"),
        description="How trials are stopped, paused, promoted or cloned: fifo (every trial "
        'trains every epoch), sha, asha, hyperband, median or pbt, with its settings: {"name": '
        '"asha", "metric": "val_loss", "reduction_factor": 3}.',
    )


class BatchCreated(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime
    size: int
    job_ids: list[uuid.UUID]


class LeaderRow(BaseModel):
    grid_point: dict[str, Any] | None
    job_id: uuid.UUID
    status: JobStatus
    final_loss: float | None
    best_loss: float | None = Field(description="Lowest val_loss (or loss, without validation).")
    trial: int | None = Field(None, description="Its index in a scheduled batch.")
    value: float | None = Field(
        None, description="The scheduler's metric at `epoch`, the trial's last rung or end."
    )
    epoch: int | None = None


class Decided(BaseModel):
    """One scheduler decision, in the order they were made."""

    job_id: uuid.UUID
    trial: int
    action: str = Field(description="paused, promoted, stopped or cloned.")
    epoch: int
    rung: int | None = Field(description="The rung (a PBT generation) it concerns.")
    detail: dict[str, Any] = Field(description="Why: the value and rank, the reason, the source.")
    actor: str = Field(description="The worker (or the reaper) that decided.")
    at: datetime


class TrialRow(BaseModel):
    job_id: uuid.UUID
    trial: int
    status: JobStatus
    rung: int | None = Field(description="The highest rung it reached (None: none yet).")
    epochs_done: int
    parent_id: uuid.UUID | None = Field(description="For a PBT clone: the trial it cloned.")
    forked_at_epoch: int | None
    decision: Decided | None = Field(description="The latest decision about it.")


class RungRow(BaseModel):
    """One rung of the ladder, and where its trials are."""

    bracket: int
    rung: int
    epoch: int
    reached: int = Field(description="Trials that reached it.")
    heading: int = Field(description="Trials queued or running towards it.")
    paused: int
    promoted: int
    stopped: int


class BatchOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    space: dict[str, Any]
    num_samples: int
    seed: int
    total: int
    done: int = Field(description="Jobs that have ended: succeeded, failed, cancelled, stopped.")
    counts: dict[str, int] = Field(description="Jobs per status.")
    leaderboard: list[LeaderRow] = Field(
        description="Every job, best first: by best loss, or by the scheduler's metric and mode."
    )
    scheduler: dict[str, Any] = Field(default_factory=dict)
    epochs_trained: int = Field(0, description="Epochs its jobs trained (a fork's own only).")
    rungs: list[RungRow] = Field(default_factory=list, description="The rung ladder.")
    trials: list[TrialRow] = Field(default_factory=list, description="Per trial, in order.")
    decisions: list[Decided] = Field(default_factory=list, description="The decision log.")


class BatchSummary(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime
    grid: dict[str, list[Any]]

    model_config = ConfigDict(from_attributes=True)


class Retried(BaseModel):
    requeued: list[uuid.UUID]


class Downsampled(BaseModel):
    points: int = Field(description="Epochs returned.")
    of: int = Field(description="Epochs in the requested range.")


class EpochRows(BaseModel):
    items: list[EpochOut] = Field(  # type: ignore[valid-type]
        description="One object per epoch with the chosen fields."
    )
    next_cursor: str | None
    downsampled: Downsampled | None = Field(description="Set when `points` thinned the range.")


class EpochColumns(BaseModel):
    columns: dict[str, list[Any]] = Field(
        description='One array per chosen field, as EpochOut describes them: {"epoch": [...], …}'
    )
    next_cursor: str | None
    downsampled: Downsampled | None


class TrajectoryOut(BaseModel):
    name: str = Field(
        description="The parameter in the seed's notation with braced indices: w^1_{0,1} is "
        "w^l_kj with l = 1, k = 0, j = 1; b^2_{0} is b^l_k with l = 2, k = 0."
    )
    layer: int
    param: Literal["weight", "bias"]
    k: int
    j: int | None
    epochs: list[int] = Field(description="The snapshot epochs.")
    values: list[float] = Field(description="The parameter's exact value at each of them.")


class SnapshotEpoch(BaseModel):
    epoch: int


class LayerOut(BaseModel):
    layer: int = Field(description="l = 1..L")
    weights: list[list[float]] = Field(description="W^l, shape (n_l, n_{l-1}); [k][j] = w^l_kj")
    biases: list[float] = Field(description="b^l, shape (n_l,)")


class SnapshotOut(BaseModel):
    epoch: int
    layers: list[LayerOut]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


# --- datasets ---


class DatasetCreate(RequestModel):
    """POST /v1/datasets as JSON. Content already stored for the caller is not stored again."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "xor", "x": XOR_X, "y": [0, 1, 1, 0]}]}
    )

    name: Name
    x: list[Row] = Field(
        min_length=1, description="One row of features per sample; every row the same length."
    )
    y: Targets = Field(description="Targets: one number, or one row of numbers, per sample of x.")


class DatasetOut(BaseModel):
    """A stored data set's metadata (never its arrays)."""

    id: uuid.UUID
    name: str
    sha256: str = Field(description="Content address: sha256 of the shapes and float64 bytes.")
    n_samples: int
    n_features: int = Field(description="Columns of x.")
    n_outputs: int = Field(description="Columns of y; 1 for a vector of targets or labels.")
    created_at: datetime

    model_config = ConfigDict(from_attributes=True)


# --- job actions ---

MAX_PREDICT_ROWS = 10_000


class PredictIn(RequestModel):
    """POST /v1/jobs/{id}/predict: inputs, one row of n_0 features per sample."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"x": XOR_X}]})

    x: list[Row] = Field(
        min_length=1, max_length=MAX_PREDICT_ROWS, description="Inputs a^0, one row per sample."
    )
    epoch: Epoch | None = Field(
        None, description="Use the snapshot at this epoch; null uses the latest one."
    )


class PredictOut(BaseModel):
    epoch: int = Field(description="The snapshot epoch whose parameters were used.")
    outputs: list[list[float]] = Field(description="a^L, one row of n_L outputs per input row.")


class EpochPoint(BaseModel):
    """An epoch's loss and validation loss, and the fields the stream's `fields` chose."""

    model_config = ConfigDict(extra="allow")

    epoch: int
    loss: float
    val_loss: float | None


class EpochsEvent(BaseModel):
    """Data of an `epochs` event: the rows flushed since the previous one, in epoch order."""

    epochs: list[EpochPoint]


class StatusEvent(BaseModel):
    """Data of a `status` event."""

    status: JobStatus
    epochs_done: int
    final_loss: float | None
    error: str | None
    reason: str | None = None
    health: Annotated[list[HealthAlert], BeforeValidator(lambda v: v or [])] = Field(
        default_factory=list, description="The job's health alerts so far."
    )


# --- idempotency and cancel ---


class Problem(BaseModel):
    """A 4xx answer: FastAPI's `detail` and a `message` a person can read."""

    detail: Any
    message: str = Field(description="One sentence, with the field path where one applies.")


# --- api keys ---

Owner = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="A team or user name: letters, digits, '.', '_' and '-'.",
    ),
]


class KeyCreate(RequestModel):
    name: Label = Field(description="What the key is for.")
    owner: Owner | None = Field(None, description="Whose jobs the key acts on; default: yours.")
    admin: bool = Field(False, description="Whether the key may create, list and revoke keys.")


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    owner: str
    admin: bool
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself. It is shown once and never stored.")
