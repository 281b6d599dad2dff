"""Bulk I/O at the driver level, where the ORM's per-row and per-byte costs show.

Writing: a worker's flush inserts thousands of epoch and snapshot rows. The ORM's bulk path
spends microseconds per row building parameters; here rows are plain tuples handed to the
driver: `executemany` on SQLite; on PostgreSQL a COPY straight into the table inside a
savepoint, and only if that meets an existing key, COPY into a staging table followed by
INSERT … SELECT … ON CONFLICT DO NOTHING (COPY itself cannot skip duplicates).

Reading: psycopg returns bytea as hex text unless asked for binary results, which costs
seconds on a 100 MB data set; `dataset_arrays` asks for binary.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import psycopg
from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session

from models.base import Base
from models.tables import PER_LAYER_FIELDS, Dataset


def insert_ignore_rows(
    session: Session, model: type[Base], job_id: uuid.UUID, rows: Sequence[Sequence[Any]]
) -> None:
    """Insert (job_id, *row) for each row into `model`'s table, whose first column is job_id
    and whose primary key is (job_id, …); rows whose key exists already are skipped."""
    if not rows:
        return
    table = cast(Table, model.__table__)  # a declarative class maps one Table
    conn = session.connection()
    columns = [c.name for c in table.columns]
    names = ", ".join(columns)
    keys = ", ".join(c.name for c in table.primary_key.columns)
    if conn.dialect.name == "postgresql":
        _copy_then_insert(_psycopg(conn), table.name, names, keys, job_id, rows)
        return
    marks = ", ".join("?" * len(columns))
    key = job_id.hex  # how SQLAlchemy's Uuid type stores a UUID on SQLite
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({names}) VALUES ({marks}) ON CONFLICT ({keys}) DO NOTHING",
        [(key, *row) for row in rows],
    )


def _copy_then_insert(pg, table: str, names: str, keys: str, job_id, rows) -> None:
    try:
        with (
            pg.transaction(),  # a savepoint inside the flush
            pg.cursor() as cur,
            cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row((job_id, *row))
        return
    except psycopg.errors.UniqueViolation:
        pass  # some rows exist already (a redelivered flush): skip those, keep the rest
    staging = f"staging_{table}"
    with pg.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
            f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((job_id, *row))
        cur.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} "
            f"ON CONFLICT ({keys}) DO NOTHING"
        )


def _psycopg(conn: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under SQLAlchemy's: COPY and binary results need the driver."""
    driver = conn.connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise TypeError(f"expected a psycopg connection, got {type(driver).__name__}")
    return driver


def upsert(session: Session, model: type, values: dict[str, Any], keys: Sequence[str]) -> None:
    """INSERT, or UPDATE the row with the same `keys`: one statement, no read of the old row
    (a merge would first load the old checkpoint's megabytes only to overwrite them)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(model).values(values)
    changed = {k: stmt.excluded[k] for k in values if k not in keys}
    session.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=changed))


def dataset_arrays(session: Session, dataset_id: uuid.UUID) -> tuple[np.ndarray, np.ndarray]:
    """x and y of a stored data set (see Dataset.arrays), read in binary on PostgreSQL."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return session.get_one(Dataset, dataset_id).arrays()
    with _psycopg(conn).cursor(binary=True) as cur:
        cur.execute(
            "SELECT n_samples, n_features, n_outputs, x, y FROM datasets WHERE id = %s",
            (dataset_id,),
        )
        found = cur.fetchone()
    if found is None:
        raise NoResultFound(f"no data set {dataset_id}")
    n, n_features, n_outputs, x, y = found
    return Dataset(n_samples=n, n_features=n_features, n_outputs=n_outputs, x=x, y=y).arrays()


def epoch_columns(
    session: Session,
    job_id: uuid.UUID,
    fields: Sequence[str],
    n_layers: int,
    *,
    first: int = 0,
    last: int | None = None,
    limit: int | None = None,
    only: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """Epochs first..last (at most `limit`; or just the epochs `only`) as columns: "epoch"
    (int64), each float field as float64 with NaN for NULL, and the gradient norms as (n, L)
    arrays. On PostgreSQL no Python object is made per value."""
    conn = session.connection()
    where = f"job_id = {{job}} AND epoch >= {int(first)}"
    if last is not None:
        where += f" AND epoch <= {int(last)}"
    if only is not None:
        where += f" AND epoch IN ({', '.join(str(int(e)) for e in only) or 'NULL'})"
    limit = int(limit) if limit is not None else 2**62
    if conn.dialect.name == "postgresql":
        return _pg_columns(conn, job_id, fields, n_layers, where, limit)
    select_list = ", ".join(["epoch", *fields])
    sql = f"SELECT {select_list} FROM epochs WHERE {where} ORDER BY epoch LIMIT {int(limit)}"
    rows = conn.exec_driver_sql(sql.format(job="?"), (job_id.hex,)).fetchall()
    cols = list(zip(*rows, strict=True)) if rows else [()] * (len(fields) + 1)
    out = {"epoch": np.array(cols[0], dtype=np.int64)}
    for name, col in zip(fields, cols[1:], strict=True):
        if name in PER_LAYER_FIELDS:
            out[name] = np.frombuffer(b"".join(col), "<f8").reshape(len(col), n_layers)
        else:
            out[name] = np.array(col, dtype=np.float64)  # None becomes NaN
    return out


def _pg_columns(conn, job_id, fields, n_layers, where, limit) -> dict[str, np.ndarray]:
    """Each column aggregated in PostgreSQL into one bytea of packed binary values, so a
    100,000-row history crosses the wire as 9 values and becomes arrays with no per-row
    Python work. Every aggregate of one query consumes the rows in the same order, so the
    columns stay aligned with the epoch column, which puts them in order."""
    packed = ["string_agg(int4send(epoch), ''::bytea)"]
    for f in fields:
        value = f if f in PER_LAYER_FIELDS else f"float8send(COALESCE({f}, 'NaN'::float8))"
        packed.append(f"string_agg({value}, ''::bytea)")
    condition = where.format(job="%s")
    query = (
        f"SELECT {', '.join(packed)} FROM (SELECT * FROM epochs WHERE {condition} "
        f"ORDER BY epoch LIMIT {int(limit)}) AS page"
    )
    with _psycopg(conn).cursor(binary=True) as cur:
        cur.execute(query, (job_id,))
        row = cur.fetchone() or (None,) * (len(fields) + 1)  # an aggregate: always one row
    epochs = np.frombuffer(row[0] or b"", ">i4").astype(np.int64)
    order = np.argsort(epochs, kind="stable")
    out = {"epoch": epochs[order]}
    for f, blob in zip(fields, row[1:], strict=True):
        if f in PER_LAYER_FIELDS:
            values = np.frombuffer(blob or b"", "<f8").reshape(-1, n_layers)
        else:
            values = np.frombuffer(blob or b"", ">f8").astype("<f8")
        out[f] = values[order]
    return out
