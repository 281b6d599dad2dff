"""A data set's content, hashed, stored and read a chunk of rows at a time.

An upload of 47 million values is 376 MB as the float64 it is stored as. Held whole, the API
would keep it once as an array and again in the driver (sqlite3 copies a bound blob, libpq
builds its message from a copy; and SQLite materialises a zeroblob that is not a row's last
column), so `Content` hands x and y over as chunks of rows read again from their source on
each pass, and each chunk is one row of `dataset_chunks`: a data set is never one buffer on
its way in, and is read into one preallocated array on its way out.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session

from models.arrays import as_buffer
from models.bulk import execute, query, stream
from models.tables import Dataset

Rows = Callable[[], Iterator[np.ndarray]]  # each call: the array again, as 2-D row chunks
CHUNK_BYTES = 8 << 20  # of an array in memory (Content.of); an upload chunks as it reads


@dataclass(frozen=True)
class Content:
    """x of shape (n, features) and y of shape (n, outputs), each given by a function that
    yields it from the start as C-order row chunks (any numeric dtype; stored as float64)."""

    x_shape: tuple[int, int]
    y_shape: tuple[int, int]
    x_rows: Rows
    y_rows: Rows

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> Content:
        """Arrays already in memory; a vector y is one column."""
        y2 = y.reshape(len(y), -1)
        return cls(x.shape, y2.shape, lambda: _chunks(x), lambda: _chunks(y2))

    def parts(self) -> Iterator[tuple[tuple[int, int], Rows]]:
        yield self.x_shape, self.x_rows
        yield self.y_shape, self.y_rows

    def sha256(self) -> str:
        """The content address: shapes and float64 bytes of x, then of y."""
        h = hashlib.sha256()
        for shape, rows in self.parts():
            h.update(repr(shape).encode())
            for chunk in rows():
                h.update(as_buffer(chunk, np.float64))
        return h.hexdigest()


def _chunks(array: np.ndarray) -> Iterator[np.ndarray]:
    step = max(1, CHUNK_BYTES // max(array[:1].nbytes, 1))
    for start in range(0, len(array), step):
        yield array[start : start + step]


def dataset_sha256(x: np.ndarray, y: np.ndarray) -> str:
    """Content address of arrays in memory (Content.sha256)."""
    return Content.of(x, y).sha256()


def insert_dataset(
    session: Session, owner: str, name: str, digest: str, content: Content
) -> Dataset:
    """INSERT the data set's row, then each chunk of x and y as a row of `dataset_chunks`;
    the new row. Does not commit. The same content twice for one owner is an IntegrityError
    (the unique owner and sha256) before any chunk is written."""
    (n, features), (_, outputs) = content.x_shape, content.y_shape
    row = Dataset(owner=owner, name=name, sha256=digest, n_samples=n, n_features=features,
                  n_outputs=outputs)  # fmt: skip
    session.add(row)
    session.flush()
    sql = "INSERT INTO dataset_chunks (dataset_id, part, seq, data) VALUES (%s, %s, %s, %b)"
    for part, (_, rows) in zip("xy", content.parts(), strict=True):
        for seq, chunk in enumerate(rows()):
            execute(session, sql, (row.id, part, seq, as_buffer(chunk, np.float64)))
    return row


def dataset_arrays(
    session: Session, dataset_id: uuid.UUID, shape: tuple[int, int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """x of shape (n, n_features); y of shape (n, n_outputs), or (n,) for one column: each
    filled from its chunks as they are fetched, one at a time. `shape` is (n, n_features,
    n_outputs) when the caller holds the row already; else it is read."""
    if shape is None:
        found = query(
            session,
            "SELECT n_samples, n_features, n_outputs FROM datasets WHERE id = %s",
            (dataset_id,),
        )
        if not found:
            raise NoResultFound(f"no data set {dataset_id}")
        shape = found[0]
    n, features, outputs = shape
    arrays = {"x": np.empty((n, features)), "y": np.empty((n, outputs))}
    filled = dict.fromkeys(arrays, 0)
    sql = "SELECT part, data FROM dataset_chunks WHERE dataset_id = %s ORDER BY part, seq"
    for part, data in stream(session, sql, (dataset_id,)):
        flat = arrays[part].reshape(-1).view(np.uint8)
        flat[filled[part] : filled[part] + len(data)] = np.frombuffer(data, np.uint8)
        filled[part] += len(data)
    for part, array in arrays.items():
        if filled[part] != array.nbytes:
            msg = f"data set {dataset_id}: {part} has {filled[part]} of {array.nbytes} bytes"
            raise ValueError(msg)
    x, y = arrays["x"], arrays["y"]
    return x, y[:, 0] if outputs == 1 else y
