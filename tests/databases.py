"""Databases deltaflow must refuse, made for real: another application's, a newer deltaflow's,
one not yet migrated, one that does not exist, a server that does not answer."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.engine import make_url

from cli.services import free_port
from models.db import make_engine
from models.migrate import script_directory, upgrade

NEWER = "9999_from_a_newer_deltaflow"


def execute(url: str, *statements: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def foreign(url: str) -> str:
    """Another application's database: tables, and no Alembic revision."""
    execute(url, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(50))")
    return url


def newer(url: str) -> str:
    """A database a newer deltaflow migrated: a revision this one does not know."""
    upgrade(url)
    execute(url, f"UPDATE alembic_version SET version_num = '{NEWER}'")
    return url


def older(url: str) -> str:
    """Migrated by an older deltaflow: one revision below the head."""
    head = script_directory().get_revision("head")
    upgrade(url, head.down_revision)
    return url


def empty(url: str) -> str:
    """No tables at all (for SQLite, an existing empty file)."""
    execute(url, "SELECT 1")
    return url


def missing(postgres_url: str) -> str:
    """A database that does not exist on a server that answers, with a password in the URL
    (which no message may show)."""
    parsed = make_url(postgres_url).set(password="s3cret-pw")
    return parsed.set(database=f"deltaflow_missing_{uuid.uuid4().hex[:8]}").render_as_string(
        hide_password=False
    )


def unreachable() -> str:
    """A PostgreSQL URL whose port nothing listens on."""
    return f"postgresql+psycopg://deltaflow:s3cret-pw@127.0.0.1:{free_port()}/deltaflow"
