"""Opaque cursors: base64url JSON, so clients treat them as tokens and we can change them."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, TypeVar

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
