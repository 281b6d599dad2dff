"""Migrations are the only way the schema changes: up, down and up again, on both databases."""

import numpy as np
import pytest
from sqlalchemy import inspect

from models import trials  # noqa: F401  (its tables, on the same metadata)
from models.arrays import from_bytes, pack, to_bytes, unpack
from models.datasets import dataset_sha256
from models.db import make_engine
from models.migrate import downgrade, upgrade
from models.tables import Base  # the tables, registered on its metadata

TABLES = {
    "decisions",
    "rungs",
    "api_keys",
    "datasets",
    "dataset_chunks",
    "jobs",
    "epoch_chunks",
    "snapshot_chunks",
    "checkpoints",
    "batches",
    "job_tags",
    "job_attempts",
    "process_metrics",
}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(database_url):
    upgrade(database_url)
    assert _tables(database_url) == TABLES
    downgrade(database_url, "base")
    assert _tables(database_url) == set()
    upgrade(database_url)
    assert _tables(database_url) == TABLES


def test_migrations_match_the_models(database_url):
    """Autogenerate finds nothing to add: the models and the migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_sqlite_runs_in_wal_mode(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


@pytest.mark.parametrize("dtype", ["<f8", "<f4"])
def test_arrays_round_trip_as_raw_little_endian_bytes(dtype):
    a = np.arange(12, dtype=dtype).reshape(3, 4) / 7
    raw = to_bytes(a.T)  # a transposed view is stored in row-major order
    assert len(raw) == a.size * a.itemsize
    np.testing.assert_array_equal(from_bytes(raw, dtype, (4, 3)), a.T)
    blob, manifest = pack({"theta": a.ravel(), "v": np.ones(2)})
    back = unpack(blob, manifest)
    assert back["theta"].tobytes() == a.ravel().tobytes()
    np.testing.assert_array_equal(back["v"], [1.0, 1.0])


def test_dataset_digest_depends_on_shape_and_values():
    x = np.zeros((4, 2))
    assert dataset_sha256(x, np.zeros(4)) != dataset_sha256(x.reshape(2, 4), np.zeros(2))
    assert dataset_sha256(x, np.zeros((4, 2))) != dataset_sha256(x, np.zeros((8, 1)))
    # A vector of labels is stored as one column: the same content either way.
    assert dataset_sha256(x, np.zeros(4)) == dataset_sha256(x, np.zeros((4, 1)))
    assert dataset_sha256(x, np.zeros(4)) != dataset_sha256(x, np.ones(4))
    assert dataset_sha256(x, np.zeros(4)) == dataset_sha256(x.copy(), np.zeros(4))


def test_a_batch_migration_keeps_the_rows_that_reference_jobs(sqlite_url):
    """0002 rebuilds `jobs` on SQLite; its checkpoints must survive (no cascade on the copy)."""
    from sqlalchemy import text

    upgrade(sqlite_url, "0001")
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO datasets VALUES ('d' || hex(randomblob(15)), 'o', 'n', 's', 1, 1, 1,"
                " x'00', x'00', '2026-01-01 00:00:00')"
            )
        )
        dataset = conn.execute(text("SELECT id FROM datasets")).scalar()
        conn.execute(
            text(
                "INSERT INTO jobs (id, owner, name, tags, spec, dataset_id, status, epochs_total,"
                " epochs_done, attempt, created_at) VALUES ('j1', 'o', 'n', '{}', '{}', :d,"
                " 'queued', 1, 0, 0, '2026-01-01 00:00:00')"
            ),
            {"d": dataset},
        )
        conn.execute(
            text("INSERT INTO checkpoints VALUES ('j1', 3, '{}', x'00', '2026-01-01 00:00:00')")
        )
    engine.dispose()
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM checkpoints")).scalar() == 1
    engine.dispose()
