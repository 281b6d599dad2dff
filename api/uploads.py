"""Binary data-set uploads (.npz, Parquet). The body is spooled to a temporary file as it
streams in; its headers are checked at once, and its values are read from the file a chunk at
a time on each pass over them (hash, then store: models.datasets), so that a large upload is
never held in memory, neither as body nor as array."""

from __future__ import annotations

import math
import tempfile
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from api import limits
from api.datasets import target_columns
from api.errors import unprocessable
from models.datasets import Content
from settings import Settings

CHUNK_VALUES = 1 << 20  # values converted at once: 8 MB of float64
NOT_NPZ = "is not an .npz file (a zip archive of .npy arrays, as numpy.savez writes)"
NOT_PARQUET = "is not a Parquet file"
FINITE = "Input should be a finite number"  # the JSON upload's sentence (pydantic's)


def require_media(request: Request, media: str, elsewhere: dict[str, str]) -> None:
    """415 unless the body is in `media`; `elsewhere` names the operation reading each other."""
    given = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if given != media:
        there = f"; {elsewhere[given]} reads {given}" if given in elsewhere else ""
        what = f"content type {given!r}" if given else "no content type"
        msg = f"this operation reads a body in {media}, not with {what}{there}"
        raise HTTPException(415, detail=msg)


def spooled(media: str, elsewhere: dict[str, str]) -> Callable[[Request], AsyncIterator[IO[bytes]]]:
    """A dependency giving the body, in `media`, as a temporary file (removed after the
    request). limits.BodyLimit bounds its size as it streams in."""

    async def spool(request: Request) -> AsyncIterator[IO[bytes]]:
        require_media(request, media, elsewhere)
        with tempfile.TemporaryFile() as file:
            async for chunk in request.stream():
                await run_in_threadpool(file.write, chunk)  # a disk write; keep the loop free
            file.seek(0)
            yield file

    return spool


def from_npz(file: IO[bytes], settings: Settings) -> Content:
    """The data set in an .npz holding arrays x (n, features) and y (n,) or (n, outputs) of
    integers or floats; never unpickles anything. Shapes, dtypes and each array's size
    (against DELTAFLOW_MAX_DATA_VALUES) are checked from the headers here, before any memory
    is given to the values; the values are read, converted and checked for finiteness as the
    Content's rows are read, a chunk at a time."""
    try:
        archive = zipfile.ZipFile(file)  # it does not own `file`: the request closes that
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        raise unprocessable(["body"], NOT_NPZ) from None
    names = archive.namelist()
    for key in ("x", "y"):
        if f"{key}.npy" not in names:
            held = ", ".join(repr(n.removesuffix(".npy")) for n in names[:20]) or "none"
            msg = f"the .npz file has no array {key!r}; its arrays are {held}"
            raise unprocessable(["body"], msg)
    x, y = (_Npy.open(archive, key, settings) for key in ("x", "y"))
    if len(x.shape) != 2 or 0 in x.shape:
        msg = f"must be 2-D with at least one sample and one feature, got shape {x.shape}"
        raise unprocessable(["body", "x"], msg)
    if len(y.shape) not in (1, 2) or 0 in y.shape:
        msg = f"must be 1-D or 2-D with at least one value per sample, got shape {y.shape}"
        raise unprocessable(["body", "y"], msg)
    if y.shape[0] != x.shape[0]:
        msg = f"must have one row per sample of x ({x.shape[0]}), got {y.shape[0]} rows"
        raise unprocessable(["body", "y"], msg)
    y_shape = (y.shape[0], math.prod(y.shape[1:]))
    return Content((x.shape[0], x.shape[1]), y_shape, x.rows, y.rows)


@dataclass(frozen=True)
class _Npy:
    """One .npy member of the archive, its header read and checked."""

    archive: zipfile.ZipFile
    key: str
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype

    @classmethod
    def open(cls, archive: zipfile.ZipFile, key: str, settings: Settings) -> _Npy:
        info = archive.getinfo(f"{key}.npy")
        with archive.open(info) as member:
            shape, fortran, dtype = _header(member, key)
            body = info.file_size - member.tell()
        if dtype.kind not in "iuf" or dtype.fields is not None or dtype.subdtype is not None:
            msg = f"must hold integers or floating-point numbers, not dtype {dtype.str!r}"
            raise unprocessable(["body", key], msg)
        if math.prod(shape) * dtype.itemsize != body:
            msg = f"is truncated or has trailing bytes: its header declares shape {shape}"
            raise unprocessable(["body", key], msg)
        limits.data_values(math.prod(shape), settings, ["body", key])
        return cls(archive, key, shape, fortran, dtype)

    def rows(self) -> Iterator[np.ndarray]:
        """The array as float64 chunks of rows (2-D), each checked finite; read from the
        member's bytes a chunk at a time. A Fortran-order array (numpy.save of a transposed
        view) has no row chunks in its bytes, so it is read whole first."""
        n, per_row = self.shape[0], math.prod(self.shape[1:])
        step = max(1, CHUNK_VALUES // per_row)
        with self.archive.open(f"{self.key}.npy") as member:
            _header(member, self.key)
            try:
                if self.fortran and len(self.shape) == 2:
                    whole = np.empty(self.shape[::-1])
                    columns = max(1, CHUNK_VALUES // n)
                    for start, chunk in _read(member, self.dtype, self.shape[::-1], columns):
                        whole[start : start + len(chunk)] = chunk
                    chunks = ((at, whole.T[at : at + step]) for at in range(0, n, step))
                else:
                    chunks = _read(member, self.dtype, (n, per_row), step)
                for start, chunk in chunks:
                    part = np.asarray(chunk, dtype=np.float64)
                    _check_finite(part, self.key, start, self.shape)
                    yield part
            except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error):
                msg = f"is damaged: {self.key}.npy cannot be read to its end"
                raise unprocessable(["body", self.key], msg) from None


def _header(member: IO[bytes], key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(member)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}[version]  # fmt: skip
        return read_header(member)
    except (ValueError, KeyError, EOFError, OSError, zipfile.BadZipFile):
        raise unprocessable(["body", key], f"is not a .npy array ({key}.npy)") from None


def _read(
    member: IO[bytes], dtype: np.dtype, shape: tuple[int, int], step: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of a C-order (n, m) array of `dtype` from `member`, `step` rows at a
    time: never the whole file's bytes at once."""
    n, m = shape
    for start in range(0, n, step):
        rows = min(step, n - start)
        data = member.read(rows * m * dtype.itemsize)
        yield start, np.frombuffer(data, dtype).reshape(rows, m)


def _check_finite(rows: np.ndarray, key: str, start: int, shape: tuple[int, ...]) -> None:
    """422 at the first NaN or infinity, with its index as the JSON upload gives it."""
    bad = ~np.isfinite(rows)
    if bad.any():
        row, column = map(int, np.argwhere(bad)[0])
        index = [start + row] if len(shape) == 1 else [start + row, column]
        raise unprocessable(["body", key, *index], FINITE)


def from_parquet(file: IO[bytes], targets: list[str], settings: Settings) -> Content:
    """The data set in a Parquet file of numeric columns: the `targets` columns (in that order)
    form y, every other column is a feature of x. Its schema and size are checked here; its
    values as the Content's rows are read, a batch of rows and one side at a time."""
    try:
        parquet = pq.ParquetFile(file)
    except (pa.ArrowException, OSError, ValueError):
        raise unprocessable(["body"], NOT_PARQUET) from None
    schema = parquet.schema_arrow
    columns = schema.names
    for i, field in enumerate(schema):
        if field.name in columns[:i]:
            raise unprocessable(["body"], f"the Parquet file names column {field.name!r} twice")
        if not (pa.types.is_integer(field.type) or pa.types.is_floating(field.type)):
            msg = f"column {field.name[:50]!r} holds {field.type}, not numbers"
            raise unprocessable(["body"], msg)
    y_names = [columns[i] for i in target_columns(columns, targets, "the Parquet file")]
    x_names = [name for name in columns if name not in y_names]
    n = parquet.metadata.num_rows
    if n == 0:
        raise unprocessable(["body"], "the Parquet file has columns but no rows")
    limits.data_values(n * len(x_names), settings, ["body"])
    return Content(
        (n, len(x_names)), (n, len(y_names)),
        partial(_parquet_rows, parquet, x_names), partial(_parquet_rows, parquet, y_names),
    )  # fmt: skip


def _parquet_rows(parquet: pq.ParquetFile, names: list[str]) -> Iterator[np.ndarray]:
    """The `names` columns as float64 chunks of rows, each value checked."""
    start = 0
    batches = parquet.iter_batches(batch_size=max(1, CHUNK_VALUES // len(names)), columns=names)
    try:
        for batch in batches:
            out = np.empty((batch.num_rows, len(names)))
            for j, name in enumerate(names):
                _column(out[:, j], batch.column(name), start, name)
            start += batch.num_rows
            yield out
    except (pa.ArrowException, OSError):
        raise unprocessable(["body"], f"{NOT_PARQUET}: it is damaged") from None


def _column(out: np.ndarray, values: pa.Array, start: int, name: str) -> None:
    where = f"row {{}}, column {name[:50]!r}"
    if values.null_count:
        row = start + int(np.argmax(values.is_null().to_numpy(zero_copy_only=False)))
        raise unprocessable(["body"], f"{where.format(row)}: a missing value is not a number")
    out[:] = values.to_numpy(zero_copy_only=False)
    bad = ~np.isfinite(out)
    if bad.any():
        i = int(np.argmax(bad))
        msg = f"{where.format(start + i)}: {values[i].as_py()!r} is not a finite number"
        raise unprocessable(["body"], msg)
