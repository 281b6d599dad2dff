"""Resolving a job's `dataset` to a stored data set (content-addressed, stored once)."""

from __future__ import annotations

import numpy as np
from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import unprocessable
from api.schemas import BuiltinData, DatasetId, DatasetRef
from backprop import datasets
from models import Dataset
from models.arrays import dataset_sha256, to_bytes

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
        raise unprocessable(
            ["body", "dataset"], "inline x and y must be rectangular: every row the same length"
        ) from None
    if x.ndim != 2 or y.ndim not in (1, 2):
        raise unprocessable(
            ["body", "dataset"], "inline x and y must be rectangular: every row the same length"
        )
    return "inline", x, y


def load(
    session: Session, owner: str, ref: DatasetRef
) -> tuple[Dataset | None, str, np.ndarray, np.ndarray]:
    """(stored row or None, name, x, y) for any reference; a stored id is checked for owner."""
    if isinstance(ref, DatasetId):
        row = session.get(Dataset, ref.id)
        if row is None or row.owner != owner:
            raise HTTPException(404, detail=f"dataset {ref.id} not found")
        return row, row.name, *row.arrays()
    return None, *materialise(ref)


def store(session: Session, owner: str, name: str, x: np.ndarray, y: np.ndarray) -> Dataset:
    """The row holding this content for `owner`, inserted if new. x and y must already have
    passed `backprop.data.prepare`. Does not commit: the caller's transaction does."""
    y2 = y.reshape(len(y), -1)  # stored with one column per output; a vector is one column
    digest = dataset_sha256(x, y2)
    row = session.scalar(select(Dataset).where(Dataset.owner == owner, Dataset.sha256 == digest))
    if row is not None:
        return row
    row = Dataset(
        owner=owner,
        name=name,
        sha256=digest,
        n_samples=x.shape[0],
        n_features=x.shape[1],
        n_outputs=y2.shape[1],
        x=to_bytes(x, np.float64),
        y=to_bytes(y2, np.float64),
    )
    session.add(row)
    session.flush()
    return row
