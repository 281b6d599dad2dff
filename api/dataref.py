"""Where a job's data comes from: a built-in set, inline arrays, or a stored data set's id."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from api.fields import RequestModel, Row, Targets
from backprop.datasets import NAMES as BUILTIN_NAMES


class BuiltinData(RequestModel):
    """One of the built-in data sets, made deterministically from its own seed."""

    builtin: Literal[BUILTIN_NAMES]  # type: ignore[valid-type]
    seed: int = Field(0, ge=0, lt=2**32)
    n: int | None = Field(None, ge=4, le=1_000_000, description="Samples, where the set allows.")
    noise: float | None = Field(None, ge=0, le=10, allow_inf_nan=False)


class InlineXY(RequestModel):
    x: list[Row] = Field(min_length=1, description="One row of features per sample.")
    y: Targets = Field(description="Targets: one number (or label), or one row, per sample.")


class InlineData(RequestModel):
    inline: InlineXY


class DatasetId(RequestModel):
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
