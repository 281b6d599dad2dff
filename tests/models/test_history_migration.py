"""Migration 0007 converts a database's history — one row per epoch and per snapshot — into
chunks, and back: on both databases, exactly."""

from __future__ import annotations

import uuid

import numpy as np
import sqlalchemy as sa

from models import history
from models.db import make_engine, session_factory
from models.migrate import downgrade, upgrade
from models.tables import EPOCH_FIELDS, PER_LAYER_FIELDS, Job
from tests.models import before

# The epoch fields revision 0006 had (0012 added the training-health ones).
OLD_FIELDS = EPOCH_FIELDS[: EPOCH_FIELDS.index("duration_ms") + 1]
OLD_EPOCHS = sa.table(
    "epochs",
    sa.column("job_id", sa.Uuid()),
    sa.column("epoch", sa.Integer()),
    *(sa.column(f, sa.LargeBinary() if f.startswith("grad_norm") else sa.Float())
      for f in OLD_FIELDS),
)  # fmt: skip
OLD_SNAPSHOTS = sa.table(
    "snapshots",
    sa.column("job_id", sa.Uuid()),
    sa.column("epoch", sa.Integer()),
    sa.column("parameters", sa.LargeBinary()),
)
L = 2


def _old_history(rng, n_epochs: int, gap_at: int | None, P: int, dtype: str, n_snaps: int):
    epochs = [e for e in range(1, n_epochs + 1) if e != gap_at]
    rows = [
        {
            "epoch": e, "loss": float(rng.normal()),
            "penalised_loss": None if dtype == "float32" else float(rng.normal()),
            "val_loss": float(rng.normal()) if e % 4 == 0 else None, "accuracy": None,
            "val_accuracy": None, "grad_norm_weights": rng.normal(size=L).astype("<f8").tobytes(),
            "grad_norm_biases": rng.normal(size=L).astype("<f8").tobytes(),
            "learning_rate": 0.5, "duration_ms": float(rng.uniform()),
        }
        for e in epochs
    ]  # fmt: skip
    snaps = {e: rng.normal(size=P).astype(dtype) for e in range(n_snaps)}
    return rows, snaps


def test_0007_converts_the_history_and_back(database_url):
    upgrade(database_url, "0006")
    engine = make_engine(database_url)
    rng = np.random.default_rng(7)
    jobs = {
        # 12,345 epochs (two chunks of at most 10,000 and a gap), 200 snapshots of 8 kB: two
        # chunks of 1 MiB and epoch 0 alone.
        uuid.uuid4(): ("float64", *_old_history(rng, 12_345, 777, 1000, "float64", 200)),
        uuid.uuid4(): ("float32", *_old_history(rng, 30, None, 7, "float32", 5)),
    }
    with session_factory(engine).begin() as s:
        dataset_id = before.dataset(s.connection())
        for job_id, (dtype, rows, snaps) in jobs.items():
            # Core leaves out the columns later revisions added; the ORM would name them all.
            s.execute(sa.insert(Job.__table__).values(
                id=job_id, name="j", tags={}, spec={"dtype": dtype}, dataset_id=dataset_id,
                epochs_total=len(rows)))  # fmt: skip
            s.execute(sa.insert(OLD_EPOCHS), [r | {"job_id": job_id} for r in rows])
            snapshot_rows = [
                {"job_id": job_id, "epoch": e, "parameters": p.tobytes()} for e, p in snaps.items()
            ]
            s.execute(sa.insert(OLD_SNAPSHOTS), snapshot_rows)
    engine.dispose()

    upgrade(database_url)
    engine = make_engine(database_url)
    with session_factory(engine)() as s:
        for job_id, (dtype, rows, snaps) in jobs.items():
            got = history.epoch_columns(s, job_id, list(EPOCH_FIELDS), L)
            assert got["epoch"].tolist() == [r["epoch"] for r in rows]
            for f in set(EPOCH_FIELDS) - set(OLD_FIELDS):  # NULL in the converted chunks
                assert np.isnan(got[f]).all(), f
                assert got[f].shape == ((len(rows), L) if f in PER_LAYER_FIELDS else (len(rows),))
            for f in OLD_FIELDS:
                if f.startswith("grad_norm"):
                    assert got[f].tobytes() == b"".join(r[f] for r in rows)
                else:
                    want = np.array([r[f] for r in rows], dtype=np.float64)
                    np.testing.assert_array_equal(got[f], want)
            kind = np.dtype(dtype)
            assert history.snapshot_epochs(s, job_id, limit=1000) == list(snaps)
            for e in (0, 1, len(snaps) - 1):
                assert history.snapshot(s, job_id, e, kind)[1].tobytes() == snaps[e].tobytes()
            values = np.array(history.trajectory(s, job_id, kind, 3)[1], kind)
            assert values.tobytes() == np.array([p[3] for p in snaps.values()]).tobytes()
        big = next(iter(jobs))
        assert history.epoch_count(s, big)[3] == 3  # split at the gap and at 10,000 epochs
        chunks = s.execute(sa.text("SELECT count(*) FROM snapshot_chunks")).scalar()
        assert chunks == 3 + 2  # big: epoch 0, then two of ≤ 1 MiB; small: epoch 0, the rest
    engine.dispose()

    downgrade(database_url, "0006")
    engine = make_engine(database_url)
    with engine.connect() as conn:
        for job_id, (_, rows, snaps) in jobs.items():
            back = (
                conn.execute(
                    sa.select(OLD_EPOCHS).where(OLD_EPOCHS.c.job_id == job_id).order_by("epoch")
                )
                .mappings()
                .all()
            )
            assert [{k: v for k, v in r.items() if k != "job_id"} for r in back] == rows
            stored = conn.execute(
                sa.select(OLD_SNAPSHOTS.c.epoch, OLD_SNAPSHOTS.c.parameters)
                .where(OLD_SNAPSHOTS.c.job_id == job_id).order_by("epoch")
            ).all()  # fmt: skip
            want = [(e, p.tobytes()) for e, p in snaps.items()]
            assert [(e, bytes(p)) for e, p in stored] == want
    engine.dispose()
