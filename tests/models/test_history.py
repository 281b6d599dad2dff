"""The stored history (models/history.py) on both databases: what is written reads back
exactly, across chunk boundaries, ranges, limits and missing values."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from models import history
from models.tables import EPOCH_FIELDS, PER_LAYER_FIELDS
from tests.factories import XOR_JOB, sessions_on, store_job

L = 3


@pytest.fixture
def sessions(migrated_database_url):
    with sessions_on(migrated_database_url) as found:
        yield found


@pytest.fixture
def job_id(sessions):
    return store_job(sessions, XOR_JOB)


def _columns(first: int, n: int, rng) -> dict[str, np.ndarray]:
    """Epoch fields as the worker buffers them: val_loss on every third epoch only, no
    penalised loss and no dead fraction at all."""
    epochs = np.arange(first, first + n)
    cols = {name: rng.normal(size=n) for name in EPOCH_FIELDS}
    cols |= {name: rng.normal(size=(n, L)) for name in PER_LAYER_FIELDS}
    cols["penalised_loss"] = np.full(n, np.nan)
    cols["dead_fraction"] = np.full((n, L), np.nan)  # a sigmoid network's: stored as NULL
    cols["val_loss"] = np.where(epochs % 3 == 0, cols["val_loss"], np.nan)
    return cols


def _flushes(sessions, job_id, sizes, seed=0) -> dict[str, np.ndarray]:
    """Epochs 1.. written as one chunk per size; returns every field, concatenated."""
    rng, first, written = np.random.default_rng(seed), 1, []
    for n in sizes:
        cols = _columns(first, n, rng)
        with sessions.begin() as s:
            history.write_epochs(s, job_id, first, cols)
        written.append(cols)
        first += n
    return {name: np.concatenate([c[name] for c in written]) for name in EPOCH_FIELDS}


def test_epochs_read_back_exactly_across_chunks(sessions, job_id):
    want = _flushes(sessions, job_id, [7, 1, 30, 12])
    with sessions() as s:
        every = history.epoch_columns(s, job_id, list(EPOCH_FIELDS), L)
        window = history.epoch_columns(s, job_id, ["loss", "val_loss"], L, first=5, last=40)
        page = history.epoch_columns(s, job_id, ["grad_norm_biases"], L, first=6, limit=3)
        other = history.epoch_columns(s, uuid.uuid4(), ["loss", "grad_norm_weights"], L)
        counted = history.epoch_count(s, job_id)
    assert every["epoch"].tolist() == list(range(1, 51))
    for name in EPOCH_FIELDS:
        np.testing.assert_array_equal(every[name], want[name])  # NaN where nothing was
    assert every["grad_norm_weights"].shape == (50, L)
    assert window["epoch"].tolist() == list(range(5, 41))
    assert window["loss"].tobytes() == want["loss"][4:40].tobytes()
    assert page["epoch"].tolist() == [6, 7, 8]  # across the boundary after epoch 7
    assert page["grad_norm_biases"].tobytes() == want["grad_norm_biases"][5:8].tobytes()
    assert other["epoch"].size == 0 and other["grad_norm_weights"].shape == (0, L)
    assert counted == (50, 1, 50, 4)


def test_a_long_flush_is_cut_into_chunks(sessions, job_id, monkeypatch):
    monkeypatch.setattr(history, "EPOCHS_PER_CHUNK", 4)
    want = _flushes(sessions, job_id, [10, 3])
    with sessions() as s:
        got = history.epoch_columns(s, job_id, ["loss", "grad_norm_weights"], L, first=3)
        counted = history.epoch_count(s, job_id)
    assert counted == (13, 1, 13, 4)  # 4 + 4 + 2, then 3
    assert got["epoch"].tolist() == list(range(3, 14))
    assert got["grad_norm_weights"].tobytes() == want["grad_norm_weights"][2:].tobytes()


def test_a_repeated_flush_is_ignored(sessions, job_id):
    rng = np.random.default_rng(1)
    first = _columns(1, 10, rng)
    with sessions.begin() as s:
        history.write_epochs(s, job_id, 1, first)
        history.write_epochs(s, job_id, 1, _columns(1, 10, rng))  # a redelivered flush
    with sessions() as s:
        got = history.epoch_columns(s, job_id, ["loss"], L)
    assert got["loss"].tobytes() == first["loss"].tobytes()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_snapshots_read_back_exactly(sessions, job_id, dtype, monkeypatch):
    P, epochs = 37, [0, *range(5, 500, 5), 498]
    epochs = sorted(set(epochs))
    thetas = np.random.default_rng(2).normal(size=(len(epochs), P)).astype(dtype)
    monkeypatch.setattr(history, "CHUNK_BYTES", 9 * P * thetas.itemsize)  # 9 per chunk
    with sessions.begin() as s:
        history.write_snapshots(s, job_id, epochs[:40], thetas[:40])
        history.write_snapshots(s, job_id, epochs[40:], thetas[40:])
    kind = np.dtype(dtype)
    with sessions() as s:
        listed = history.snapshot_epochs(s, job_id, limit=10_000)
        page = history.snapshot_epochs(s, job_id, after=42, limit=4)
        at = {e: history.snapshot(s, job_id, e, kind)[1] for e in (0, 5, 45, 200, 498)}
        latest = history.snapshot(s, job_id, None, kind)
        trail = history.trajectory(s, job_id, kind, 11)
        nearest = history.nearest_snapshots(s, job_id, 43)
        with pytest.raises(KeyError):
            history.snapshot(s, job_id, 43, kind)
    assert listed == epochs and page == [45, 50, 55, 60]
    for e, theta in at.items():
        assert theta.tobytes() == thetas[epochs.index(e)].tobytes()
    assert latest[0] == 498 and latest[1].tobytes() == thetas[-1].tobytes()
    assert trail[0] == epochs
    assert np.array(trail[1], dtype=dtype).tobytes() == thetas[:, 11].tobytes()
    assert nearest == [40, 45]


def test_the_initial_snapshot_is_a_chunk_of_its_own(sessions, job_id):
    """A worker that starts a job afresh takes the epoch-0 snapshot again: its repeat is
    ignored without hiding the snapshots that follow it."""
    thetas = np.arange(12.0).reshape(3, 4)
    with sessions.begin() as s:
        history.write_snapshots(s, job_id, [0], thetas[:1])
    with sessions.begin() as s:
        history.write_snapshots(s, job_id, [0, 1, 2], thetas)
    with sessions() as s:
        assert history.snapshot_epochs(s, job_id, limit=10) == [0, 1, 2]
        assert history.snapshot(s, job_id, 2, np.dtype("float64"))[1].tolist() == [8, 9, 10, 11]


def test_delete_removes_the_history(sessions, job_id):
    _flushes(sessions, job_id, [5])
    with sessions.begin() as s:
        history.write_snapshots(s, job_id, [0, 5], np.zeros((2, 3)))
    with sessions.begin() as s:
        history.delete(s, job_id)
    with sessions() as s:
        assert history.epoch_count(s, job_id)[0] == 0
        assert history.snapshot_epochs(s, job_id, limit=10) == []
