"""history in chunks: epochs and snapshots stored one row per flush, not one row per epoch

epoch_chunks holds consecutive epochs as packed float64 columns, snapshot_chunks several
snapshots' θ as one parameter-major blob (models/tables.py says why). Upgrading converts every
stored epoch and snapshot row into chunks — consecutive epochs up to EPOCHS_PER_CHUNK per row,
snapshots up to CHUNK_BYTES of parameters per row, epoch 0 alone — and drops the old tables;
downgrading converts back. Self-contained: it reads and writes through the driver, streaming
one job at a time, and imports nothing of deltaflow's that may change later.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

"""

import json
from collections.abc import Iterator, Sequence
from itertools import groupby
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLOATS = ("loss", "penalised_loss", "val_loss", "accuracy", "val_accuracy")
PER_LAYER = ("grad_norm_weights", "grad_norm_biases")
REQUIRED = ("learning_rate", "duration_ms")
FIELDS = (*FLOATS, *PER_LAYER, *REQUIRED)
NULLABLE = set(FLOATS[1:])
EPOCHS_PER_CHUNK = 10_000
CHUNK_BYTES = 1 << 20
F8, I4 = np.dtype("<f8"), np.dtype("<i4")


def upgrade() -> None:
    """Upgrade schema, then convert the stored history."""
    blob = sa.LargeBinary()
    op.create_table(
        "epoch_chunks",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("first_epoch", sa.Integer(), nullable=False),
        sa.Column("last_epoch", sa.Integer(), nullable=False),
        *(sa.Column(name, blob, nullable=name in NULLABLE) for name in FIELDS),
        sa.PrimaryKeyConstraint("job_id", "first_epoch", name=op.f("pk_epoch_chunks")),
    )
    op.create_table(
        "snapshot_chunks",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("first_epoch", sa.Integer(), nullable=False),
        sa.Column("last_epoch", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("epochs", blob, nullable=False),
        sa.Column("parameters", blob, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "first_epoch", name=op.f("pk_snapshot_chunks")),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Uncompressed out of line: substr then reads only the bytes it returns (a trajectory
        # reads one byte range per chunk), and trained weights do not compress (FACTS.md).
        op.execute("ALTER TABLE snapshot_chunks ALTER COLUMN parameters SET STORAGE EXTERNAL")
    driver = _Driver(bind)
    for job_id, _ in driver.jobs("epochs"):
        driver.insert("epoch_chunks", _epoch_chunks(job_id, driver.epochs(job_id)))
    for job_id, size in driver.jobs("snapshots"):
        driver.insert("snapshot_chunks", _snapshot_chunks(job_id, size, driver.snapshots(job_id)))
    op.drop_table("epochs")
    op.drop_table("snapshots")


def downgrade() -> None:
    """Downgrade schema: the chunks back into one row per epoch and per snapshot."""
    op.create_table(
        "epochs",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=name in NULLABLE) for name in FLOATS),
        *(sa.Column(name, sa.LargeBinary(), nullable=False) for name in PER_LAYER),
        *(sa.Column(name, sa.Float(), nullable=False) for name in REQUIRED),
        sa.PrimaryKeyConstraint("job_id", "epoch", name=op.f("pk_epochs")),
    )
    op.create_table(
        "snapshots",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("parameters", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "epoch", name=op.f("pk_snapshots")),
    )
    driver = _Driver(op.get_bind())
    for job_id, _ in driver.jobs("epoch_chunks"):
        driver.insert("epochs", _epoch_rows(job_id, driver.rows("epoch_chunks", job_id)))
    for job_id, size in driver.jobs("snapshot_chunks"):
        rows = _snapshot_rows(job_id, size, driver.rows("snapshot_chunks", job_id))
        driver.insert("snapshots", rows)
    op.drop_table("epoch_chunks")
    op.drop_table("snapshot_chunks")


class _Driver:
    """Streaming reads and batched writes through the database driver: binary bytea on
    PostgreSQL (hex text would double every blob), UUIDs as hex text on SQLite."""

    def __init__(self, bind: sa.Connection) -> None:
        self.pg = bind.dialect.name == "postgresql"
        self.raw = bind.connection.driver_connection

    def _sql(self, sql: str) -> str:
        return sql if self.pg else sql.replace("%s", "?").replace("%b", "?")

    def _key(self, job_id: Any) -> Any:
        return job_id if self.pg else str(job_id)

    def stream(self, sql: str, params: tuple = ()) -> Iterator[tuple]:
        cursor = self.raw.cursor(binary=True) if self.pg else self.raw.cursor()
        try:
            cursor.execute(self._sql(sql), params)
            while batch := cursor.fetchmany(1000):
                yield from batch
        finally:
            cursor.close()

    def jobs(self, table: str) -> list[tuple[Any, int]]:
        """Each job with rows in `table`, and the bytes of one of its parameters (the spec's
        dtype; a job deleted without its history counts as float64, the default)."""
        found = list(self.stream(f"SELECT DISTINCT job_id FROM {table}"))
        specs = dict(self.stream("SELECT id, spec FROM jobs"))
        return [(job_id, _itemsize(specs.get(job_id))) for (job_id,) in found]

    def epochs(self, job_id: Any) -> Iterator[tuple]:
        columns = ", ".join(("epoch", *FIELDS))
        sql = f"SELECT {columns} FROM epochs WHERE job_id = %s ORDER BY epoch"
        return self.stream(sql, (self._key(job_id),))

    def snapshots(self, job_id: Any) -> Iterator[tuple]:
        sql = "SELECT epoch, parameters FROM snapshots WHERE job_id = %s ORDER BY epoch"
        return self.stream(sql, (self._key(job_id),))

    def rows(self, table: str, job_id: Any) -> Iterator[tuple]:
        sql = f"SELECT * FROM {table} WHERE job_id = %s ORDER BY first_epoch"
        return self.stream(sql, (self._key(job_id),))

    def insert(self, table: str, rows: Iterator[tuple]) -> None:
        cursor = self.raw.cursor()
        try:
            batch: list[tuple] = []
            for row in rows:
                batch.append((self._key(row[0]), *row[1:]))
                if len(batch) == 100:
                    self._write(cursor, table, batch)
                    batch = []
            self._write(cursor, table, batch)
        finally:
            cursor.close()

    def _write(self, cursor: Any, table: str, batch: list[tuple]) -> None:
        if batch:
            marks = ", ".join("%b" if isinstance(v, bytes) else "%s" for v in batch[0])
            cursor.executemany(self._sql(f"INSERT INTO {table} VALUES ({marks})"), batch)


def _itemsize(spec: Any) -> int:
    spec = json.loads(spec) if isinstance(spec, str | bytes) else spec or {}
    return 4 if spec.get("dtype") == "float32" else 8


def _epoch_chunks(job_id: Any, rows: Iterator[tuple]) -> Iterator[tuple]:
    """Runs of consecutive epochs, up to EPOCHS_PER_CHUNK each, as epoch_chunks rows."""
    batch: list[tuple] = []
    for row in rows:
        if batch and (row[0] != batch[-1][0] + 1 or len(batch) == EPOCHS_PER_CHUNK):
            yield _epoch_chunk(job_id, batch)
            batch = []
        batch.append(row)
    if batch:
        yield _epoch_chunk(job_id, batch)


def _epoch_chunk(job_id: Any, batch: list[tuple]) -> tuple:
    columns = list(zip(*batch, strict=True))
    packed = []
    for name, values in zip(FIELDS, columns[1:], strict=True):
        if name in PER_LAYER:
            packed.append(b"".join(bytes(v) for v in values))
        elif name in NULLABLE and all(v is None for v in values):
            packed.append(None)
        else:
            packed.append(np.array(values, dtype=F8).tobytes())  # None becomes NaN
    return (job_id, batch[0][0], batch[-1][0], *packed)


def _snapshot_chunks(job_id: Any, size: int, rows: Iterator[tuple]) -> Iterator[tuple]:
    """Snapshots up to CHUNK_BYTES of parameters per row, parameter-major; epoch 0 alone."""
    for is_initial, group in groupby(rows, key=lambda row: row[0] == 0):
        batch: list[tuple] = []
        for epoch, parameters in group:
            full = batch and len(batch) * len(parameters) >= CHUNK_BYTES
            if batch and (is_initial or full):
                yield _snapshot_chunk(job_id, size, batch)
                batch = []
            batch.append((epoch, bytes(parameters)))
        if batch:
            yield _snapshot_chunk(job_id, size, batch)


def _snapshot_chunk(job_id: Any, size: int, batch: list[tuple[int, bytes]]) -> tuple:
    """θ_i of every snapshot contiguous: transposed in units of one value (`size` bytes)."""
    epochs = np.array([e for e, _ in batch], dtype=I4)
    thetas = np.stack([np.frombuffer(p, np.uint8) for _, p in batch])  # (count, bytes of θ)
    n = len(batch)
    per_value = thetas.reshape(n, -1, size).transpose(1, 0, 2)  # (P, count, itemsize)
    return (job_id, int(epochs[0]), int(epochs[-1]), n, epochs.tobytes(), per_value.tobytes())


def _epoch_rows(job_id: Any, chunks: Iterator[tuple]) -> Iterator[tuple]:
    for chunk in chunks:
        first, last = chunk[1], chunk[2]
        n = last - first + 1
        values = dict(zip(FIELDS, chunk[3:], strict=True))
        columns = []
        for name in FIELDS:
            blob = values[name]
            if name in PER_LAYER:
                width = len(blob) // n
                columns.append([bytes(blob[i * width : (i + 1) * width]) for i in range(n)])
            elif blob is None:
                columns.append([None] * n)
            else:
                arr = np.frombuffer(blob, F8)
                columns.append([None if np.isnan(v) else float(v) for v in arr])
        for i in range(n):
            yield (job_id, first + i, *(column[i] for column in columns))


def _snapshot_rows(job_id: Any, size: int, chunks: Iterator[tuple]) -> Iterator[tuple]:
    for chunk in chunks:
        count, epochs, parameters = chunk[3], chunk[4], chunk[5]
        values = np.frombuffer(parameters, np.uint8)
        per_value = values.reshape(-1, count, size).transpose(1, 0, 2)  # (count, P, itemsize)
        for m, epoch in enumerate(np.frombuffer(epochs, I4)):
            yield (job_id, int(epoch), per_value[m].tobytes())
