"""Opaque cursors: base64url JSON, so clients treat them as tokens and we can change them."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import Session

from api.errors import unprocessable

T = TypeVar("T")


def encode(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode(cursor: str, parse: Callable[[Any], T]) -> T:
    """The position a cursor stands for, as `parse` reads it; 422 for a cursor we never gave."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return parse(json.loads(base64.urlsafe_b64decode(padded.encode())))
    except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError):
        raise unprocessable(["query", "cursor"], "cursor is not one this API gave out") from None


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
    return datetime.fromisoformat(at), uuid.UUID(row_id)
