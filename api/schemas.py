"""HTTP shapes. Request models forbid unknown fields; a job body is a TrainSpec plus a name,
tags and where the data comes from."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from api.fields import Epoch, Label, Name, Row, TagKey, TagValue, Targets
from backprop.datasets import NAMES as BUILTIN_NAMES
from backprop.spec import TrainSpec

T = TypeVar("T")


class _Request(BaseModel):
    # strict, as TrainSpec is: a number in quotes or 0 for false is a mistake, not a value
    model_config = ConfigDict(extra="forbid", strict=True)


class BuiltinData(_Request):
    """One of the built-in data sets, made deterministically from its own seed."""

    builtin: Literal[BUILTIN_NAMES]  # type: ignore[valid-type]
    seed: int = Field(0, ge=0, lt=2**32)
    n: int | None = Field(None, ge=4, le=1_000_000, description="Samples, where the set allows.")
    noise: float | None = Field(None, ge=0, le=10, allow_inf_nan=False)


class InlineXY(_Request):
    x: list[Row] = Field(min_length=1, description="One row of features per sample.")
    y: Targets = Field(description="Targets: one number (or label), or one row, per sample.")


class InlineData(_Request):
    inline: InlineXY


class DatasetId(_Request):
    id: Annotated[uuid.UUID, Field(strict=False)]  # JSON has no UUID type: read from a string


def _dataset_kind(value: Any) -> str | None:
    """The key that says which kind a dataset reference is (a model's own, when serialising)."""
    keys = value if isinstance(value, dict) else getattr(type(value), "model_fields", ())
    return next((key for key in ("builtin", "inline", "id") if key in keys), None)


# Told apart by their key, so that an error names the fields of the kind that was meant rather
# than every kind's.
DatasetRef = Annotated[
    Annotated[BuiltinData, Tag("builtin")]
    | Annotated[InlineData, Tag("inline")]
    | Annotated[DatasetId, Tag("id")],
    Discriminator(
        _dataset_kind,
        custom_error_type="dataset_kind",
        custom_error_message="give one of {builtin: …}, {inline: {x, y}} or {id: …}",
    ),
]


def _key_rule_as_property_names(schema: dict[str, Any]) -> None:
    """Pydantic documents a key pattern as patternProperties, which leave other keys free;
    propertyNames says that every key must match."""
    ((pattern, values),) = schema.pop("patternProperties").items()
    schema["propertyNames"]["pattern"] = pattern
    schema["additionalProperties"] = values


class JobCreate(TrainSpec):
    """POST /v1/jobs: every TrainSpec field, plus name, tags and dataset."""

    name: Name = "job"
    tags: dict[TagKey, TagValue] = Field(
        default_factory=dict, max_length=50, json_schema_extra=_key_rule_as_property_names
    )
    dataset: DatasetRef

    def spec(self) -> TrainSpec:
        return TrainSpec.model_validate(self.model_dump(exclude={"name", "tags", "dataset"}))


class JobOut(BaseModel):
    id: uuid.UUID
    name: str
    status: str
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


class EpochOut(BaseModel):
    epoch: int
    loss: float
    val_loss: float | None
    accuracy: float | None
    val_accuracy: float | None
    grad_norm_weights: list[float] = Field(description="‖∂C/∂W^l‖ for l = 1..L")
    grad_norm_biases: list[float] = Field(description="‖∂C/∂b^l‖ for l = 1..L")
    learning_rate: float
    duration_ms: float


class BatchCreate(_Request):
    """POST /v1/batches: one job per point of the grid's cartesian product."""

    name: Name
    base: JobCreate = Field(description="A job body, as for POST /v1/jobs.")
    grid: dict[Annotated[str, Field(max_length=100)], list[Any]] = Field(
        default_factory=dict,
        max_length=20,
        description='Spec paths to values, e.g. {"optimizer.learning_rate": [0.5, 0.1]}.',
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
    status: str
    final_loss: float | None
    best_loss: float | None = Field(description="Lowest val_loss (or loss, without validation).")


class BatchOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    total: int
    done: int = Field(description="Jobs that have ended: succeeded, failed or cancelled.")
    counts: dict[str, int] = Field(description="Jobs per status.")
    leaderboard: list[LeaderRow] = Field(description="Every job, best loss first.")


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
    items: list[dict[str, Any]] = Field(description="One object per epoch with the chosen fields.")
    next_cursor: str | None
    downsampled: Downsampled | None = Field(description="Set when `points` thinned the range.")


class EpochColumns(BaseModel):
    columns: dict[str, list[Any]] = Field(description='One array per field: {"epoch": [...], …}')
    next_cursor: str | None
    downsampled: Downsampled | None


class TrajectoryOut(BaseModel):
    name: str = Field(description="The parameter in the seed's notation, e.g. w^1_01 or b^2_0.")
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


class DatasetCreate(_Request):
    """POST /v1/datasets as JSON. Content already stored for the caller is not stored again."""

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


class PredictIn(_Request):
    """POST /v1/jobs/{id}/predict: inputs, one row of n_0 features per sample."""

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
    epoch: int
    loss: float
    val_loss: float | None


class EpochsEvent(BaseModel):
    """Data of an `epochs` event: the rows flushed since the previous one, in epoch order."""

    epochs: list[EpochPoint]


class StatusEvent(BaseModel):
    """Data of a `status` event."""

    status: str
    epochs_done: int
    final_loss: float | None
    error: str | None


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


class KeyCreate(_Request):
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
