"""Arrays as raw little-endian bytes: how every array is stored (DESIGN §4)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np


def to_bytes(array: np.ndarray, dtype: str | np.dtype | None = None) -> bytes:
    """C-order little-endian bytes of `array` (cast to `dtype` when given)."""
    dt = np.dtype(dtype or array.dtype).newbyteorder("<")
    if array.dtype == dt:
        return array.tobytes(order="C")  # one copy, even from a transposed view
    return np.ascontiguousarray(array, dtype=dt).tobytes()


def from_bytes(data: bytes, dtype: str | np.dtype, shape: tuple[int, ...]) -> np.ndarray:
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


class Layout:
    """Where each parameter sits in a snapshot blob for layer sizes (n_0, …, n_L):
    W^1 … W^L in column-major order (so w^l_kj is element k + j·n_l of block l), then b^1 … b^L.
    This is also the order of the engine's flat parameter array."""

    def __init__(self, sizes: list[int], dtype: str | np.dtype) -> None:
        self.sizes = [int(n) for n in sizes]
        self.dtype = np.dtype(dtype).newbyteorder("<")
        pairs = list(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        self.weight_starts = np.cumsum([0] + [a * b for a, b in pairs])[:-1].tolist()
        n_weights = sum(a * b for a, b in pairs)
        self.bias_starts = (n_weights + np.cumsum([0, *self.sizes[1:-1]])).tolist()
        self.size = n_weights + sum(self.sizes[1:])

    @property
    def n_layers(self) -> int:
        """L: layers with parameters."""
        return len(self.sizes) - 1

    def weight_index(self, l: int, k: int, j: int) -> int:
        """Element index of w^l_kj (l = 1..L, 0-based k < n_l and j < n_{l-1})."""
        return self.weight_starts[l - 1] + k + j * self.sizes[l]

    def bias_index(self, l: int, k: int) -> int:
        return self.bias_starts[l - 1] + k

    def split(self, blob: bytes) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(W^l of shape (n_l, n_{l-1}), b^l of shape (n_l,)) for l = 1..L."""
        flat = np.frombuffer(blob, dtype=self.dtype, count=self.size)
        Ws, bs = [], []
        for l in range(1, self.n_layers + 1):
            n_in, n_out = self.sizes[l - 1], self.sizes[l]
            w0, b0 = self.weight_starts[l - 1], self.bias_starts[l - 1]
            Ws.append(flat[w0 : w0 + n_in * n_out].reshape((n_out, n_in), order="F"))
            bs.append(flat[b0 : b0 + n_out])
        return Ws, bs


def dataset_sha256(x: np.ndarray, y: np.ndarray) -> str:
    """Content address of a data set: shapes and float64 bytes of x and y."""
    h = hashlib.sha256()
    for part in (x, y):
        h.update(repr(part.shape).encode())
        h.update(to_bytes(part, np.float64))
    return h.hexdigest()
