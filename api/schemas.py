"""HTTP shapes. Request models forbid unknown fields; a job body is a TrainSpec plus a name,
tags and where the data comes from."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from backprop.datasets import NAMES as BUILTIN_NAMES
from backprop.spec import TrainSpec

T = TypeVar("T")
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BuiltinData(_Request):
    """One of the built-in data sets, made deterministically from its own seed."""

    builtin: Literal[BUILTIN_NAMES]  # type: ignore[valid-type]
    seed: int = Field(0, ge=0, lt=2**32)
    n: int | None = Field(None, ge=4, le=1_000_000, description="Samples, where the set allows.")
    noise: float | None = Field(None, ge=0, le=10)


class InlineXY(_Request):
    x: list[list[Finite]] = Field(min_length=1, description="One row of features per sample.")
    y: list[Finite] | list[list[Finite]] = Field(
        min_length=1, description="Targets: one row per sample, or one number (or label) each."
    )


class InlineData(_Request):
    inline: InlineXY


class DatasetId(_Request):
    id: uuid.UUID


DatasetRef = BuiltinData | InlineData | DatasetId


class JobCreate(TrainSpec):
    """POST /v1/jobs: every TrainSpec field, plus name, tags and dataset."""

    name: str = Field("job", min_length=1, max_length=200)
    tags: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=200)]] = (
        Field(default_factory=dict, max_length=50)
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
