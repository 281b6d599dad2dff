"""Driver-level reads and writes agree with the ORM on both databases."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sqlalchemy import select

from models.bulk import epoch_columns, insert_ignore_rows
from models.tables import EPOCH_FIELDS, Dataset, Epoch, Job
from tests.factories import sessions_on

L = 3


@pytest.fixture
def sessions(migrated_database_url):
    with sessions_on(migrated_database_url) as found:
        yield found


@pytest.fixture
def job_id(sessions):
    with sessions.begin() as s:
        ds = Dataset(name="d", sha256="0" * 64, n_samples=1, n_features=1, n_outputs=1,
                     x=b"\0" * 8, y=b"\0" * 8)  # fmt: skip
        s.add(ds)
        s.flush()
        job = Job(name="j", tags={}, spec={}, dataset_id=ds.id, epochs_total=50)
        s.add(job)
    return job.id


def _rows(epochs, rng):
    """Rows as the worker writes them: the epoch, then EPOCH_FIELDS in their declared order."""
    rows = []
    for e in epochs:
        values = {
            "loss": float(rng.normal()),
            "penalised_loss": None,
            "val_loss": None if e % 3 else float(rng.normal()),  # NULLs between values
            "accuracy": None,
            "val_accuracy": None,
            "grad_norm_weights": rng.normal(size=L).astype("<f8").tobytes(),
            "grad_norm_biases": rng.normal(size=L).astype("<f8").tobytes(),
            "learning_rate": 0.1,
            "duration_ms": float(e),
        }
        rows.append((e, *(values[field] for field in EPOCH_FIELDS)))
    return rows


FIELDS = ["loss", "val_loss", "grad_norm_weights", "grad_norm_biases", "duration_ms"]


def test_columns_equal_the_orm_rows(sessions, job_id):
    rows = _rows(range(1, 51), np.random.default_rng(0))
    with sessions.begin() as s:
        insert_ignore_rows(s, Epoch, job_id, rows)
        insert_ignore_rows(s, Epoch, job_id, rows[10:20])  # ignored: they exist
    with sessions() as s:
        orm = s.scalars(select(Epoch).where(Epoch.job_id == job_id).order_by(Epoch.epoch)).all()
        cols = epoch_columns(s, job_id, FIELDS, L, first=5, last=40, limit=30)
        some = epoch_columns(s, job_id, ["loss"], L, only=[3, 7, 49, 99])
        other = epoch_columns(s, uuid.uuid4(), FIELDS, L)
    assert len(orm) == 50
    window = orm[4:34]
    assert cols["epoch"].tolist() == [r.epoch for r in window]
    assert cols["loss"].tolist() == [r.loss for r in window]
    assert [None if np.isnan(v) else v for v in cols["val_loss"]] == [r.val_loss for r in window]
    assert cols["grad_norm_weights"].shape == (30, L)
    assert cols["grad_norm_weights"].tobytes() == b"".join(r.grad_norm_weights for r in window)
    assert cols["grad_norm_biases"].tobytes() == b"".join(r.grad_norm_biases for r in window)
    assert some["epoch"].tolist() == [3, 7, 49]
    assert some["loss"].tolist() == [orm[2].loss, orm[6].loss, orm[48].loss]
    assert other["epoch"].size == 0
    assert other["grad_norm_weights"].shape == (0, L)
