"""Arrays as raw little-endian bytes: how every array is stored (DESIGN §4)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def to_bytes(array: np.ndarray, dtype: npt.DTypeLike | None = None) -> bytes:
    """C-order little-endian bytes of `array` (cast to `dtype` when given)."""
    dt = np.dtype(dtype or array.dtype).newbyteorder("<")
    if array.dtype == dt:
        return array.tobytes(order="C")  # one copy, even from a transposed view
    return np.ascontiguousarray(array, dtype=dt).tobytes()


def as_buffer(array: np.ndarray, dtype: npt.DTypeLike) -> bytes | memoryview:
    """The bytes `to_bytes` would give, as a view of `array` when its memory already holds them
    (C order, little-endian `dtype`): a large data set is hashed and stored without a copy."""
    dt = np.dtype(dtype).newbyteorder("<")
    if array.dtype == dt and array.flags.c_contiguous:
        return array.data.cast("B")
    return to_bytes(array, dt)


def from_bytes(data: bytes, dtype: npt.DTypeLike, shape: tuple[int, ...]) -> np.ndarray:
    """The array `to_bytes` wrote (read-only view of `data`)."""
    return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def pack(arrays: dict[str, np.ndarray]) -> tuple[bytes, list[dict[str, Any]]]:
    """Several arrays as one blob plus a JSON-safe manifest of name, dtype, shape and offset."""
    manifest, chunks, offset = [], [], 0
    for name, array in arrays.items():
        chunk = to_bytes(array)
        manifest.append(
            {"name": name, "dtype": array.dtype.str, "shape": list(array.shape), "offset": offset}
        )
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks), manifest


def unpack(blob: bytes, manifest: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    out = {}
    for entry in manifest:
        dtype = np.dtype(entry["dtype"])
        count = int(np.prod(entry["shape"], dtype=np.int64))
        flat = np.frombuffer(blob, dtype=dtype, count=count, offset=entry["offset"])
        out[entry["name"]] = flat.reshape(entry["shape"]).copy()
    return out
