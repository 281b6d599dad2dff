"""Field types for untrusted input, shared by request bodies and query, path and header
parameters: finite numbers, bounded printable strings, epoch numbers the database can hold.

Each bound is in the OpenAPI document (so clients and fuzzers see it) and each breach is a
sentence naming the field.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
)

from models.status import JobStatus


class RequestModel(BaseModel):
    """A request body: unknown fields are refused, and values are strict, as in TrainSpec: a
    number in quotes, or 0 for false, is a mistake to report rather than a value to coerce."""

    model_config = ConfigDict(extra="forbid", strict=True)


# JSON's 1e999 parses as infinity and Python's json reads NaN: numbers are refused unless finite.
Finite = Annotated[float, Field(allow_inf_nan=False)]

Row = Annotated[list[Finite], Field(min_length=1)]


def _targets_kind(value: Any) -> str:
    return "rows" if isinstance(value, list) and value and isinstance(value[0], list) else "values"


# y: one number per sample, or one row per sample; told apart by the first element, so that an
# error names what is wrong with the kind that was given rather than with both kinds.
Targets = Annotated[
    Annotated[list[Finite], Field(min_length=1), Tag("values")]
    | Annotated[list[Row], Field(min_length=1), Tag("rows")],
    Discriminator(_targets_kind),
]

# Epochs are 32-bit INTEGER columns; a larger number in a query would fail in the database.
MAX_EPOCH = 2**31 - 1
Epoch = Annotated[int, Field(ge=0, le=MAX_EPOCH)]
OwnQuery = Annotated[
    bool,
    Query(description="For a fork: its own epochs only, without its parent's up to the fork."),
]


def _iso_utc(value: Any) -> datetime:
    """An ISO 8601 time in UTC (one without a zone is UTC). Pydantic alone would also read
    `0.5` as a Unix time, which the document's date-time format does not allow."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value)
            if len(value) <= len("2025-01-31"):  # a date alone, which is no time of day
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError("must be an ISO 8601 time, such as 2025-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC time Python has
        raise ValueError("is out of the range of times") from None


IsoTime = Annotated[datetime, BeforeValidator(_iso_utc)]

# Control characters (C0, DEL, C1) are refused in every string: PostgreSQL cannot store NUL,
# and the CLI prints names into terminals, where escape sequences would be obeyed. The pattern
# documents the rule; `_printable` enforces it with a sentence (a pattern error reads badly).
CONTROL = r"\x00-\x1f\x7f-\x9f"


def _printable(value: str) -> str:
    for i, char in enumerate(value):
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError(
                f"must not hold control characters (U+{ord(char):04X} at position {i})"
            )
    return value


def _no_colon(value: str) -> str:
    if ":" in value:
        raise ValueError("must not hold ':', which separates key and value in `tag=key:value`")
    return value


def _key_value(value: str) -> str:
    key, colon, _ = value.partition(":")
    if not colon or not 1 <= len(key) <= 100:
        raise ValueError("must be `key:value`, with a key of 1 to 100 characters")
    return value


def _text(max_length: int, pattern: str = f"^[^{CONTROL}]*$", *checks: object) -> object:
    return Annotated[
        str,
        Field(min_length=1, max_length=max_length, json_schema_extra={"pattern": pattern}),
        AfterValidator(_printable),
        *checks,
    ]


Name = _text(200)
Label = _text(100)  # what an API key is for
TagKey = _text(100, f"^[^:{CONTROL}]*$", AfterValidator(_no_colon))
TagValue = _text(200)


def _key_rule_as_property_names(schema: dict[str, Any]) -> None:
    """Pydantic documents a key pattern as patternProperties, which leave other keys free;
    propertyNames says that every key must match."""
    ((pattern, values),) = schema.pop("patternProperties").items()
    schema["propertyNames"]["pattern"] = pattern
    schema["additionalProperties"] = values


Tags = Annotated[
    dict[TagKey, TagValue],  # type: ignore[valid-type]
    Field(max_length=50, json_schema_extra=_key_rule_as_property_names),
]
TagFilter = _text(301, f"^[^:{CONTROL}]{{1,100}}:[^{CONTROL}]*$", AfterValidator(_key_value))
Column = _text(200)  # a CSV column name
Cursor = _text(1000)  # base64url of a small JSON position; ours are under 300 characters
PageLimit = Annotated[int, Query(ge=1, le=500, description="Items per page.")]
CursorQuery = Annotated[
    Cursor | None,  # type: ignore[operator]
    Query(description="`next_cursor` of the previous page."),
]


# The selectors of the many-job reads (GET /v1/epochs, GET /v1/compare; api/listing.choose).
MAX_IDS = 1000  # repeated job_id parameters: a URL of ~40 kB
JobIdsQuery = Annotated[
    list[uuid.UUID] | None,
    Query(max_length=MAX_IDS, description=f"Repeatable: these jobs (at most {MAX_IDS})."),
]
BatchQuery = Annotated[uuid.UUID | None, Query(description="The jobs of this batch.")]
StatusesQuery = Annotated[
    list[JobStatus] | None, Query(max_length=len(JobStatus), description="Any of.")
]
TagsQuery = Annotated[
    list[TagFilter] | None,
    Query(max_length=50, description="Repeatable `key:value`: all must hold."),
]
