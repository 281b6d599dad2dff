"""Binary data-set uploads (.npz, Parquet). The body is spooled to a temporary file as it
streams in, then read into one float64 array per side chunk by chunk, so that a large upload
is held in memory once, as the float64 it is stored as — not as body, parsed and converted
copies of it."""

from __future__ import annotations

import math
import tempfile
import zipfile
from collections.abc import AsyncIterator, Callable
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from api import limits
from api.datasets import target_columns
from api.errors import unprocessable
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


def from_npz(file: IO[bytes], settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from an .npz holding arrays x (n, features) and y (n,) or (n, outputs) of
    integers or floats; never unpickles anything. Each array's size is checked against
    DELTAFLOW_MAX_DATA_VALUES from its header, before any memory is given to it."""
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        raise unprocessable(["body"], NOT_NPZ) from None
    with archive:
        names = archive.namelist()
        for key in ("x", "y"):
            if f"{key}.npy" not in names:
                held = ", ".join(repr(n.removesuffix(".npy")) for n in names[:20]) or "none"
                msg = f"the .npz file has no array {key!r}; its arrays are {held}"
                raise unprocessable(["body"], msg)
        x = _npy(archive, "x", settings)
        y = _npy(archive, "y", settings)
    if x.ndim != 2 or 0 in x.shape:
        msg = f"must be 2-D with at least one sample and one feature, got shape {x.shape}"
        raise unprocessable(["body", "x"], msg)
    if y.ndim not in (1, 2) or 0 in y.shape:
        msg = f"must be 1-D or 2-D with at least one value per sample, got shape {y.shape}"
        raise unprocessable(["body", "y"], msg)
    if len(y) != len(x):
        msg = f"must have one row per sample of x ({len(x)}), got {len(y)} rows"
        raise unprocessable(["body", "y"], msg)
    return x, y


def _npy(archive: zipfile.ZipFile, key: str, settings: Settings) -> np.ndarray:
    """The array `key` as float64, read from its zip member in chunks."""
    info = archive.getinfo(f"{key}.npy")
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}[version]  # fmt: skip
            shape, fortran, dtype = read_header(member)
        except (ValueError, KeyError, EOFError, OSError, zipfile.BadZipFile):
            raise unprocessable(["body", key], f"is not a .npy array ({key}.npy)") from None
        if dtype.kind not in "iuf" or dtype.fields is not None or dtype.subdtype is not None:
            msg = f"must hold integers or floating-point numbers, not dtype {dtype.str!r}"
            raise unprocessable(["body", key], msg)
        if math.prod(shape) * dtype.itemsize != info.file_size - member.tell():
            msg = f"is truncated or has trailing bytes: its header declares shape {shape}"
            raise unprocessable(["body", key], msg)
        limits.data_values(math.prod(shape), settings, ["body", key])
        out = np.empty(shape, dtype=np.float64)
        _fill(member, out.T if fortran else out, dtype)
    _check_finite(out, key)
    return out


def _fill(member: IO[bytes], view: np.ndarray, dtype: np.dtype) -> None:
    """`view` (the array in the order its bytes are written) from `member`, a chunk of rows at
    a time: never the whole file's bytes at once."""
    if view.ndim == 0:
        view[()] = np.frombuffer(member.read(dtype.itemsize), dtype)[0]
        return
    per_row = math.prod(view.shape[1:])
    step = max(1, CHUNK_VALUES // max(per_row, 1))
    for start in range(0, len(view), step):
        rows = min(step, len(view) - start)
        data = member.read(rows * per_row * dtype.itemsize)
        view[start : start + rows] = np.frombuffer(data, dtype).reshape(rows, *view.shape[1:])


def _check_finite(array: np.ndarray, key: str) -> None:
    """422 at the first NaN or infinity, with its index as the JSON upload gives it."""
    step = max(1, CHUNK_VALUES // max(math.prod(array.shape[1:]), 1))
    for start in range(0, len(array), step):
        bad = ~np.isfinite(array[start : start + step])
        if bad.any():
            first = np.argwhere(bad)[0]
            raise unprocessable(["body", key, start + int(first[0]), *map(int, first[1:])], FINITE)


def from_parquet(
    file: IO[bytes], targets: list[str], settings: Settings
) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from a Parquet file of numeric columns: the `targets` columns (in that order)
    form y, every other column is a feature of x. Read a batch of rows at a time."""
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
    y_at = target_columns(columns, targets, "the Parquet file")
    x_at = [i for i in range(len(columns)) if i not in y_at]
    n = parquet.metadata.num_rows
    if n == 0:
        raise unprocessable(["body"], "the Parquet file has columns but no rows")
    limits.data_values(n * len(x_at), settings, ["body"])
    x, y = np.empty((n, len(x_at))), np.empty((n, len(y_at)))
    start = 0
    batches = parquet.iter_batches(batch_size=max(1, CHUNK_VALUES // len(columns)))
    try:
        for batch in batches:
            for out, at in ((x, x_at), (y, y_at)):
                for j, i in enumerate(at):
                    _column(out[start : start + batch.num_rows, j], batch.column(i), start,
                            columns[i])  # fmt: skip
            start += batch.num_rows
    except (pa.ArrowException, OSError):
        raise unprocessable(["body"], f"{NOT_PARQUET}: it is damaged") from None
    return x, y[:, 0].copy() if len(y_at) == 1 else y


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
