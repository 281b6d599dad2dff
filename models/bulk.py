"""Fast insert-or-ignore of many rows, at the driver level.

A worker's flush writes thousands of epoch and snapshot rows. The ORM's bulk path spends
microseconds per row building parameters; here rows are plain tuples handed to the driver:
`executemany` on SQLite, and on PostgreSQL COPY into a temporary table followed by one
INSERT … SELECT … ON CONFLICT DO NOTHING (COPY itself cannot skip duplicates).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session


def insert_ignore_rows(
    session: Session, table: Table, job_id: uuid.UUID, rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert (job_id, *row) for each row into `table`, whose first column is job_id and whose
    primary key is (job_id, …); rows whose key exists already are skipped."""
    if not rows:
        return
    conn = session.connection()
    columns = [c.name for c in table.columns]
    names = ", ".join(columns)
    keys = ", ".join(c.name for c in table.primary_key.columns)
    if conn.dialect.name == "postgresql":
        _copy_then_insert(conn.connection.driver_connection, table.name, names, keys, job_id, rows)
        return
    marks = ", ".join("?" * len(columns))
    key = job_id.hex  # how SQLAlchemy's Uuid type stores a UUID on SQLite
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({names}) VALUES ({marks}) ON CONFLICT ({keys}) DO NOTHING",
        [(key, *row) for row in rows],
    )


def _copy_then_insert(pg, table: str, names: str, keys: str, job_id, rows) -> None:
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
