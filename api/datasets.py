"""Data sets: resolving a job's `dataset`, reading uploads (JSON or CSV), storing them once by
content (sha256 of shapes and bytes)."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.dataref import BuiltinData, DatasetId, DatasetRef
from api.deps import get_owned
from api.errors import unprocessable
from api.schemas import DatasetCreate
from backprop import datasets
from models.datasets import Content, dataset_arrays, insert_dataset
from models.tables import Dataset

RAGGED = "inline x and y must be rectangular: every row the same length"


def materialise(ref: DatasetRef) -> tuple[str, np.ndarray, np.ndarray]:
    """(name, x, y) for a built-in or inline reference."""
    if isinstance(ref, BuiltinData):
        options = {k: v for k, v in (("n", ref.n), ("noise", ref.noise)) if v is not None}
        try:
            data = datasets.load(ref.builtin, seed=ref.seed, **options)
        except TypeError:
            msg = f"built-in data set {ref.builtin!r} takes no option {sorted(options)}"
            raise unprocessable(["body", "dataset"], msg) from None
        return f"{ref.builtin} (seed {ref.seed})", data.x, data.y
    try:
        x = np.asarray(ref.inline.x, dtype=np.float64)
        y = np.asarray(ref.inline.y, dtype=np.float64)
    except ValueError:
        raise unprocessable(["body", "dataset"], RAGGED) from None
    if x.ndim != 2 or y.ndim not in (1, 2):
        raise unprocessable(["body", "dataset"], RAGGED)
    return "inline", x, y


def load(
    session: Session, owner: str, ref: DatasetRef
) -> tuple[Dataset | None, str, np.ndarray, np.ndarray]:
    """(stored row or None, name, x, y) for any reference; a stored id is checked for owner."""
    if isinstance(ref, DatasetId):
        row = get_owned(session, Dataset, ref.id, owner)
        shape = (row.n_samples, row.n_features, row.n_outputs)
        return row, row.name, *dataset_arrays(session, row.id, shape)
    return None, *materialise(ref)


def store(session: Session, owner: str, name: str, x: np.ndarray, y: np.ndarray) -> Dataset:
    """The row holding this content for `owner`, inserted if new. x and y must already have
    passed `backprop.data.prepare`. Does not commit: the caller's transaction does."""
    content = Content.of(x, y)
    return put(session, owner, name, content, content.sha256())[0]


def put(
    session: Session, owner: str, name: str, content: Content, digest: str
) -> tuple[Dataset, bool]:
    """(row, created): the row holding `content` (whose sha256 is `digest`) for `owner`, and
    whether it was inserted now. Looked up by digest first, so the same content is stored
    once; written a chunk at a time (models.datasets). Does not commit."""
    row = find(session, owner, digest)
    if row is not None:
        return row, False
    return insert_dataset(session, owner, name, digest, content), True


def find(session: Session, owner: str, digest: str) -> Dataset | None:
    """`owner`'s data set with this content address, if stored."""
    return session.scalar(select(Dataset).where(Dataset.owner == owner, Dataset.sha256 == digest))


def from_json(body: DatasetCreate) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of an upload pydantic has checked for finite numbers; here: the shapes."""
    _rectangular(body.x, "x")
    if len(body.y) != len(body.x):
        msg = f"must have one row per sample of x ({len(body.x)}), got {len(body.y)} rows"
        raise unprocessable(["body", "y"], msg)
    if isinstance(body.y[0], list):
        _rectangular(body.y, "y")
    return np.array(body.x, dtype=np.float64), np.array(body.y, dtype=np.float64)


def _rectangular(rows: list[list[float]], field: str) -> None:
    for i, row in enumerate(rows):
        if len(row) != len(rows[0]):
            msg = f"must be rectangular: row 0 has length {len(rows[0])} but row {i} has {len(row)}"
            raise unprocessable(["body", field], msg)


def from_csv(text: str, targets: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from CSV text: a header line, then one sample per line, every value a finite
    number. The `targets` columns (in that order) form y; every other column is a feature."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise unprocessable(["body"], "the CSV is empty: expected a header line, then data")
        columns = _columns(header)
        y_at = target_columns(columns, targets, "the CSV")
        x_at = [i for i in range(len(columns)) if i not in y_at]
        rows = [_numbers(reader.line_num, row, columns) for row in reader if row]
    except csv.Error as exc:
        raise unprocessable(["body"], f"line {reader.line_num}: {exc}") from None
    if not rows:
        raise unprocessable(["body"], "the CSV has a header but no data lines")
    table = np.array(rows, dtype=np.float64)
    y = table[:, y_at]
    return np.ascontiguousarray(table[:, x_at]), y[:, 0].copy() if len(y_at) == 1 else y


def _columns(header: list[str]) -> list[str]:
    columns = [name.strip() for name in header]
    for i, name in enumerate(columns):
        if not name:
            raise unprocessable(["body"], f"line 1: header column {i + 1} has no name")
        if name in columns[:i]:
            raise unprocessable(["body"], f"line 1: the header names column {name!r} twice")
    return columns


def target_columns(columns: list[str], targets: list[str], source: str) -> list[int]:
    """The positions of the `targets` columns (which form y) among `source`'s columns; 422 at
    query.target naming a missing or repeated one, or targets that leave x no feature."""
    for i, name in enumerate(targets):
        if name not in columns:
            known = ", ".join(map(repr, columns[:20])) + (", …" if len(columns) > 20 else "")
            msg = f"{source} has no column {name!r}; its columns are {known}"
            raise unprocessable(["query", "target"], msg)
        if name in targets[:i]:
            raise unprocessable(["query", "target"], f"names column {name!r} twice")
    if len(targets) == len(columns):
        msg = "every column is a target, which leaves x no feature column"
        raise unprocessable(["query", "target"], msg)
    return [columns.index(name) for name in targets]


def _numbers(line: int, row: list[str], columns: list[str]) -> list[float]:
    if len(row) != len(columns):
        msg = f"line {line} has {len(row)} fields but the header has {len(columns)} columns"
        raise unprocessable(["body"], msg)
    values = []
    for column, cell in zip(columns, row, strict=True):
        try:
            value = float(cell)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value):
            what = "a number" if value is None else "a finite number"
            msg = f"line {line}, column {column[:50]!r}: {_short(cell)} is not {what}"
            raise unprocessable(["body"], msg)
        values.append(value)
    return values


def _short(cell: str) -> str:
    """A cell as a message quotes it: a field may be 100,000 characters long."""
    return repr(cell) if len(cell) <= 40 else f"{cell[:40]!r}…"
