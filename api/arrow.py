"""Epoch columns as Apache Arrow: record batches, IPC streams and Parquet files.

The arrays are built from the numpy columns (api/history.py) without a Python object per value:
a float column becomes an Arrow float64 array over the same buffer, NaN — a missing value, null
in JSON — marked null in the validity bitmap. A per-layer field, (n, L) in numpy, becomes one
float64 column per layer, `grad_norm_weights_1` … `grad_norm_weights_L` (l as in W^l): flat
columns are what a pandas DataFrame holds naturally (a list column would be an object column).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from models.tables import PER_LAYER_FIELDS

STREAM = "application/vnd.apache.arrow.stream"
JOB_ID = pa.dictionary(pa.int32(), pa.string())


def field_names(fields: Sequence[str], n_layers: int) -> list[str]:
    """The columns the fields become: `epoch`, then each field, per-layer ones as name_1…."""
    names = ["epoch"]
    for name in fields:
        if name in PER_LAYER_FIELDS:
            names += [f"{name}_{layer}" for layer in range(1, n_layers + 1)]
        elif name != "epoch":
            names.append(name)
    return names


def schema(fields: Sequence[str], n_layers: int, *, job_id: bool = False) -> pa.Schema:
    columns = [pa.field("epoch", pa.int64())]
    columns += [pa.field(n, pa.float64()) for n in field_names(fields, n_layers)[1:]]
    if job_id:  # the export of many jobs: which job each row is of, first
        columns.insert(0, pa.field("job_id", JOB_ID))
    return pa.schema(columns)


def _arrays(columns: dict[str, np.ndarray], n_layers: int) -> Iterator[pa.Array]:
    """Epoch then the fields' arrays, in field_names order; layers a job lacks (a job of the
    export shallower than the deepest) are null."""
    yield pa.array(columns["epoch"], pa.int64())
    n = len(columns["epoch"])
    for name, values in columns.items():
        if name == "epoch":
            continue
        if name not in PER_LAYER_FIELDS:
            yield pa.array(values, pa.float64(), from_pandas=True)
            continue
        for layer in range(n_layers):
            if layer < values.shape[1]:
                column = np.ascontiguousarray(values[:, layer])
                yield pa.array(column, pa.float64(), from_pandas=True)
            else:
                yield pa.nulls(n, pa.float64())


def batch(
    columns: dict[str, np.ndarray], target: pa.Schema, n_layers: int, job: int | None = None,
    dictionary: pa.Array | None = None,
) -> pa.RecordBatch:  # fmt: skip
    """One record batch of `target`; with `job`, led by that job's index into `dictionary`,
    the same dictionary in every batch of a stream (so it is written once)."""
    arrays = list(_arrays(columns, n_layers))
    if job is not None:
        indices = pa.array(np.full(len(columns["epoch"]), job, np.int32))
        arrays.insert(0, pa.DictionaryArray.from_arrays(indices, dictionary))
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def stream_bytes(record: pa.RecordBatch) -> bytes:
    """One IPC stream holding the batch: its schema, the batch, the end-of-stream marker."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, record.schema) as writer:
        writer.write_batch(record)
    return sink.getvalue().to_pybytes()


def parquet_bytes(record: pa.RecordBatch) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_batches([record]), buffer)
    return buffer.getvalue()


class _Chunks(io.RawIOBase):
    """A sink that keeps what the IPC writer gives it until the next `take`."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]  # bytes-like, as RawIOBase's
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def stream(target: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """The IPC stream of `batches`, as bytes each time a batch is written: a response that
    sends them as they are read, never holding the whole table."""
    sink = _Chunks()
    with pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), target) as writer:
        yield sink.take()  # the schema: the client knows the columns before the first job
        for record in batches:
            writer.write_batch(record)
            yield sink.take()
    yield sink.take()  # the end-of-stream marker
