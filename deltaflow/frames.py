"""Arrow tables as what the caller asked for: pandas (the default), polars, Arrow or numpy."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.ipc

As = Literal["pandas", "polars", "arrow", "numpy"]
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def read_stream(content: bytes) -> pa.Table:
    """The table an Arrow IPC stream holds."""
    with pyarrow.ipc.open_stream(content) as reader:
        return reader.read_all()


def convert(table: pa.Table, as_: As) -> Any:
    """`table` as a pandas DataFrame, a polars DataFrame, itself, or {column: numpy array}."""
    if as_ == "pandas":
        return table.to_pandas()
    if as_ == "polars":
        try:
            import polars
        except ImportError:
            raise ImportError("as_='polars' needs polars: pip install polars") from None
        return polars.from_arrow(table)
    if as_ == "arrow":
        return table
    if as_ == "numpy":
        return {name: _numpy(table.column(name)) for name in table.column_names}
    raise ValueError(f"as_ must be 'pandas', 'polars', 'arrow' or 'numpy', not {as_!r}")


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A column as numpy: a list column (a per-layer field) as a 2-D array, epochs × layers."""
    if pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type):
        return np.array(column.to_pylist(), dtype=np.float64)
    return column.to_numpy()
