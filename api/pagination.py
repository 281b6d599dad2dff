"""Opaque cursors: base64url JSON, so clients treat them as tokens and we can change them."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import Session

from api.errors import unprocessable
from api.fields import MAX_EPOCH

T = TypeVar("T")

# What a cursor's JSON, being untrusted, can make a parser raise: each means "not ours".
_NOT_OURS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


def encode(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode(cursor: str, parse: Callable[[Any], T]) -> T:
    """The position a cursor stands for, as `parse` reads it; 422 for a cursor we never gave.
    `parse` must check every value it returns: they go into SQL."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return parse(json.loads(base64.urlsafe_b64decode(padded.encode())))
    except _NOT_OURS:
        raise unprocessable(["query", "cursor"], "cursor is not one this API gave out") from None


def epoch(value: Any) -> int:
    """An epoch cursor: a whole number the epochs column can hold."""
    if type(value) is not int or not -1 <= value <= MAX_EPOCH:
        raise ValueError("not an epoch")
    return value


def moment(value: Any) -> datetime:
    """An ISO time as an aware UTC datetime (one without a zone is UTC)."""
    if not isinstance(value, str):
        raise TypeError("not a time")
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def newest_first(session: Session, query: Select, model: Any, limit: int, cursor: str | None):
    """A page of `query`'s rows by (created_at, id) descending: {"items", "next_cursor"}. The
    model needs `created_at` and `id` columns, and an index on them for big tables."""
    if cursor:
        at, row_id = decode(cursor, _created_position)
        query = query.where(tuple_(model.created_at, model.id) < (at, row_id))
    query = query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    items = list(session.scalars(query))
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        next_cursor = encode([items[-1].created_at.isoformat(), str(items[-1].id)])
    return {"items": items, "next_cursor": next_cursor}


def _created_position(value: Any) -> tuple[datetime, uuid.UUID]:
    at, row_id = value
    if not isinstance(row_id, str):
        raise TypeError("not an id")
    return moment(at), uuid.UUID(row_id)
