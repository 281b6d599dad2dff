"""Statements at the driver level, where the ORM's per-row and per-byte costs show.

The history's hot paths (a worker's flush, the history reads) run plain SQL through the driver:
`query` and `insert_ignore` take SQL written with psycopg's placeholders — `%s` for a value,
`%b` for bytes sent in binary — and run it on psycopg, or on sqlite3 with `?` in their place
and UUIDs as SQLAlchemy stores them there (hex). On PostgreSQL, results come back in binary:
psycopg returns bytea as hex text unless asked, which costs seconds on a 100 MB data set and
doubles every blob on the wire; parameters given as `%b` go out in binary for the same reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def psycopg_connection(conn: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under SQLAlchemy's: binary results and parameters need it."""
    driver = conn.connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise TypeError(f"expected a psycopg connection, got {type(driver).__name__}")
    return driver


def _for_sqlite(sql: str, params: Iterable[Any]) -> tuple[str, tuple[Any, ...]]:
    values = tuple(p.hex if isinstance(p, uuid.UUID) else p for p in params)
    return sql.replace("%s", "?").replace("%b", "?"), values


def query(session: Session, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Every row `sql` returns, in the session's transaction (binary results on PostgreSQL)."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        with psycopg_connection(conn).cursor(binary=True) as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    return [tuple(row) for row in conn.exec_driver_sql(*_for_sqlite(sql, params)).fetchall()]


def execute(session: Session, sql: str, params: Sequence[Any]) -> None:
    """One statement returning nothing, in the session's transaction (`%b` bytes in binary)."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        with psycopg_connection(conn).cursor() as cur:
            cur.execute(sql, params)
        return
    conn.exec_driver_sql(*_for_sqlite(sql, params))


def stream(session: Session, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
    """The rows `sql` returns, fetched one at a time (a server-side cursor on PostgreSQL), for
    results too large to hold at once; binary on PostgreSQL."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        with psycopg_connection(conn).cursor(f"stream_{uuid.uuid4().hex}", binary=True) as cur:
            cur.itersize = 1
            cur.execute(sql, params)
            yield from cur
        return
    yield from (tuple(row) for row in conn.exec_driver_sql(*_for_sqlite(sql, params)))


def insert_ignore(
    session: Session, table: str, columns: Sequence[str], keys: Sequence[str], rows: list[tuple]
) -> None:
    """INSERT `rows` into `table`, skipping those whose `keys` exist already (a redelivered
    flush): one executemany, pipelined by psycopg into one round trip. Bytes go as `%b`."""
    if not rows:
        return
    marks = ", ".join("%b" if isinstance(v, bytes) else "%s" for v in rows[0])
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(keys)}) DO NOTHING"
    )
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        with psycopg_connection(conn).cursor() as cur:
            if len(rows) == 1:
                cur.execute(sql, rows[0])  # executemany's pipeline costs more for one row
            else:
                cur.executemany(sql, rows)
        return
    sqlite_sql = _for_sqlite(sql, ())[0]
    conn.exec_driver_sql(sqlite_sql, [_for_sqlite("", row)[1] for row in rows])


def upsert(session: Session, model: type, values: dict[str, Any], keys: Sequence[str]) -> None:
    """INSERT, or UPDATE the row with the same `keys`: one statement, no read of the old row
    (a merge would first load the old checkpoint's megabytes only to overwrite them)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(model).values(values)
    changed = {k: stmt.excluded[k] for k in values if k not in keys}
    session.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=changed))
