"""c.datasets: upload data sets from numpy arrays or a pandas/polars DataFrame, read them back."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from deltaflow._http import Transport

BINARY = "application/octet-stream"


class Datasets:
    """The caller's data sets (`/v1/datasets`)."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def upload(
        self, x: Any, y: Any = None, *, name: str, target: str | Sequence[str] | None = None
    ) -> dict:
        """Store a data set and answer its record (`id`, shapes, `sha256`); the same content
        uploaded twice is stored once. `x` is a 2-D array (samples × features) with `y` its
        labels or targets, or a pandas/polars DataFrame whose `target` column(s) form y. Sent
        as an .npz file (float32 stays float32 on the wire; the service stores float64)."""
        if hasattr(x, "columns"):
            if target is None or y is not None:
                raise TypeError("a DataFrame upload names its y columns with target=, not y=")
            x, y = _split(x, [target] if isinstance(target, str) else list(target))
        elif y is None:
            raise TypeError("upload(x, y, name=…) needs y, or x as a DataFrame with target=")
        with tempfile.TemporaryFile() as file:
            np.savez(file, x=np.asarray(x), y=np.asarray(y))
            file.seek(0)  # sent from disk a chunk at a time, with its Content-Length
            return self._t.request(
                "POST", "/v1/datasets/npz", params={"name": name},
                content=file, headers={"Content-Type": BINARY},
            )  # fmt: skip

    def get(self, dataset_id: str) -> dict:
        return self._t.get(f"/v1/datasets/{dataset_id}")

    def list(self) -> list[dict]:
        """Every data set of this key, newest first (every page)."""
        return list(self._t.pages("/v1/datasets"))


def _split(frame: Any, target: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a DataFrame: the `target` columns form y, every other column x."""
    missing = [t for t in target if t not in frame.columns]
    if missing:
        raise KeyError(f"the DataFrame has no column {missing[0]!r}")
    features = [c for c in frame.columns if c not in target]
    x = frame[features].to_numpy()
    y = frame[target].to_numpy()
    return x, y[:, 0] if len(target) == 1 else y
