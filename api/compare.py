"""Comparing runs: one epoch field of many jobs, each thinned to a line of at most `points`
epochs, with a summary of each (last, min, max, the value at an epoch) and the hyperparameters
the jobs differ in — what the dashboard's compare page and `deltaflow compare` show.

A field is an epoch field by its name (`loss`, `val_loss`, …) or a per-layer one as its Arrow
column is named, `name_l` for layer l (`dead_fraction_1`, `update_ratio_weights_2`).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from api.errors import unprocessable
from models.tables import EPOCH_FIELDS, PER_LAYER_FIELDS

SCALARS = [f for f in EPOCH_FIELDS if f not in PER_LAYER_FIELDS]
_PER_LAYER = re.compile(r"(?P<name>[a-z_]+)_(?P<layer>[1-9][0-9]*)")


def parse_field(field: str) -> tuple[str, int | None]:
    """(stored field, layer l or None); 422 naming the fields there are."""
    if field in SCALARS:
        return field, None
    found = _PER_LAYER.fullmatch(field)
    if found and found["name"] in PER_LAYER_FIELDS:
        return found["name"], int(found["layer"])
    per_layer = ", ".join(f"{f}_l" for f in sorted(PER_LAYER_FIELDS))
    msg = f"{field!r} is not an epoch field; use one of {', '.join(SCALARS)}, or {per_layer}"
    raise unprocessable(["query", "field"], msg)


def values(columns: dict[str, np.ndarray], field: str, layer: int | None) -> np.ndarray:
    """The field's value at each of the columns' epochs (NaN where a job has no layer l)."""
    stored = columns[field]
    if layer is None:
        return stored
    if layer > stored.shape[1]:
        return np.full(len(stored), np.nan)
    return stored[:, layer - 1]


def summary(epochs: np.ndarray, value: np.ndarray, at: int | None) -> dict[str, float | None]:
    """last, min and max of the finite values, and the value at epoch `at` (None when absent)."""
    finite = np.isfinite(value)
    held = value[finite]
    there = np.flatnonzero(epochs == at) if at is not None else []
    return {
        "last": _number(held[-1]) if held.size else None,
        "min": _number(held.min()) if held.size else None,
        "max": _number(held.max()) if held.size else None,
        "at": _number(value[there[0]]) if len(there) else None,
    }


def _number(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def flatten(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A spec as dotted keys (`optimizer.learning_rate`), lists kept whole (`network.layers`)."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if isinstance(value, dict) and value:
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def varying(specs: list[dict[str, Any]]) -> list[str]:
    """The dotted keys whose values differ between the specs, in the first spec's order."""
    keys = list(dict.fromkeys(k for spec in specs for k in spec))
    return [k for k in keys if len({repr(spec.get(k)) for spec in specs}) > 1]
