"""Data sets written a chunk at a time (models/datasets.py) on both databases: the row reads
back exactly, and a second insert of the same content for the same owner is refused as the
ORM's insert would be; migration 0011 moves the old blob columns into chunks and back."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from models import datasets
from models.datasets import Content, dataset_arrays, insert_dataset
from models.db import make_engine
from models.migrate import downgrade, upgrade
from models.tables import Dataset, DatasetChunk
from tests.factories import sessions_on
from tests.models import before


@pytest.fixture
def sessions(migrated_database_url):
    with sessions_on(migrated_database_url) as found:
        yield found


def test_chunked_insert_reads_back_exactly(sessions, monkeypatch):
    monkeypatch.setattr(datasets, "CHUNK_BYTES", 56)  # 7 values: rows split across chunks
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(31, 3)), rng.normal(size=(31, 2)).astype(np.float32)
    content = Content.of(x, y)
    with sessions.begin() as s:
        dataset_id = insert_dataset(s, "alice", "name \t with\\ escapes é", content.sha256(),
                                    content).id  # fmt: skip
    with sessions() as s:
        row = s.get_one(Dataset, dataset_id)
        assert (row.owner, row.name, row.n_samples, row.n_features, row.n_outputs) == (
            "alice", "name \t with\\ escapes é", 31, 3, 2)  # fmt: skip
        assert row.created_at.tzinfo is not None
        sx, sy = dataset_arrays(s, dataset_id)
    assert np.array_equal(sx, x) and np.array_equal(sy, y.astype(np.float64))


def test_the_same_content_twice_for_one_owner_is_an_integrity_error(sessions):
    content = Content.of(np.eye(3), np.arange(3))
    with sessions.begin() as s:
        insert_dataset(s, "alice", "first", content.sha256(), content)
    with pytest.raises(IntegrityError), sessions.begin() as s:
        insert_dataset(s, "alice", "again", content.sha256(), content)
    with sessions.begin() as s:
        insert_dataset(s, "bob", "his own", content.sha256(), content)
        assert s.query(Dataset).count() == 2


def test_0011_moves_the_blobs_into_chunks_and_back(database_url, monkeypatch):
    upgrade(database_url, "0010")
    rng = np.random.default_rng(11)
    big = rng.normal(size=(1_200_000,))  # 9.6 MB: two chunks of at most 8 MiB
    x, y = big.reshape(200_000, 6), rng.normal(size=(200_000, 2))
    engine = make_engine(database_url)
    with engine.begin() as conn:
        ids = [before.dataset(conn, x.tobytes(), y.tobytes(), (200_000, 6, 2)),
               before.dataset(conn)]  # fmt: skip
    engine.dispose()

    upgrade(database_url)
    with sessions_on(database_url) as sessions, sessions() as s:
        sx, sy = dataset_arrays(s, ids[0])
        assert np.array_equal(sx, x) and np.array_equal(sy, y)
        assert dataset_arrays(s, ids[1])[0].tolist() == [[0.0]]
        counts = s.execute(sa.select(DatasetChunk.part, sa.func.count()).where(
            DatasetChunk.dataset_id == ids[0]).group_by(DatasetChunk.part)).all()  # fmt: skip
        assert sorted(counts) == [("x", 2), ("y", 1)]

    downgrade(database_url, "0010")
    engine = make_engine(database_url)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(before.DATASETS.c.id, before.DATASETS.c.x)).all())
    engine.dispose()
    assert rows == {ids[0]: x.tobytes(), ids[1]: b"\0" * 8}


def test_postgresql_keeps_chunks_uncompressed(migrated_postgres_url):
    """pglz would spend 0.3 s on each chunk of float32-valued data (migration 0011)."""
    engine = make_engine(migrated_postgres_url)
    with engine.connect() as conn:
        storage = conn.execute(sa.text(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = 'dataset_chunks'::regclass"
            " AND attname = 'data'")).scalar_one()  # fmt: skip
    engine.dispose()
    assert storage == "e"  # EXTERNAL: out of line, never compressed
