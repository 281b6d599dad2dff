"""Can deltaflow use this database? Every entry point asks before it starts — `deltaflow up`
and `demo` (through worker/bootstrap.py, which then migrates), the API's lifespan, the worker
and the reaper — so that a wrong DELTAFLOW_DATABASE_URL ends in one sentence that names the URL
(password hidden) and what to do, instead of a traceback from a request, a task or a migration.

A database is deltaflow's when Alembic stamped it with a revision this deltaflow knows. Tables
without a stamp are another application's; a revision it does not know was written by a newer
deltaflow (or another application using Alembic), and migrating or using it would go wrong.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from models.db import make_engine
from models.migrate import script_directory, upgrade

VERSION_TABLE = "alembic_version"
CONNECT_TIMEOUT = 10  # seconds: a server that does not answer must not hang a start for minutes
PREPARE = "python -m worker.bootstrap (deltaflow up and deltaflow demo run it)"


class DatabaseProblem(Exception):
    """deltaflow cannot use the database; the message is the sentence to show, as it is."""


def shown(url: str) -> str:
    """`url` with its password replaced by ***, fit to print."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL SQLAlchemy parses: hide whatever sits where one would be
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def check_database(url: str, *, migrating: bool = False) -> None:
    """Raise DatabaseProblem unless `url` answers and holds deltaflow's schema at the latest
    revision. With `migrating` (the caller upgrades next) an empty database or an older
    revision is fine; a missing SQLite file then is too (migrating creates it)."""
    if not migrating:
        _require_sqlite_file(url)
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            stamps = _stamps(conn) if VERSION_TABLE in tables else []
    except (DBAPIError, OSError) as exc:
        raise DatabaseProblem(_unreachable(url, exc)) from None
    finally:
        engine.dispose()
    _judge(url, tables - {VERSION_TABLE}, stamps, migrating)


def migrate_database(url: str) -> None:
    """Check `url` as a database to migrate, then bring it to the latest revision; a failure
    of either is a DatabaseProblem."""
    check_database(url, migrating=True)
    try:
        upgrade(url)
    except (DBAPIError, OSError) as exc:
        raise DatabaseProblem(
            f"migrating the database {shown(url)} failed: {_reason(exc)}; check that its user "
            "may create tables"
        ) from None


def exit_unless_usable(url: str) -> None:
    """For a process's start: SystemExit with the sentence (Python prints it on stderr and
    exits with status 1) rather than a traceback."""
    try:
        check_database(url)
    except DatabaseProblem as exc:
        raise SystemExit(str(exc)) from None


def _require_sqlite_file(url: str) -> None:
    """Connecting would create an empty file, and then call it un-migrated: say it is missing."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # _engine says what is wrong with it
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return
    if not Path(name).exists():
        raise DatabaseProblem(
            f"the SQLite database {shown(url)} does not exist (no file {Path(name).resolve()}): "
            f"create it with {PREPARE}, or set DELTAFLOW_DATABASE_URL to deltaflow's database"
        )


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
        options = {}
        if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
        return make_engine(url, **options)  # makes a SQLite file's directory
    except OSError as exc:
        raise DatabaseProblem(_unreachable(url, exc)) from None
    except (ArgumentError, ImportError) as exc:  # not a URL, or a dialect or driver not installed
        raise DatabaseProblem(
            f"DELTAFLOW_DATABASE_URL {shown(url)} is not a database deltaflow can use ({exc}): "
            "deltaflow runs on sqlite:///PATH and postgresql+psycopg://USER:PASSWORD@HOST/NAME"
        ) from None


def _stamps(conn: Connection) -> list[str]:
    return list(conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


def _judge(url: str, tables: set[str], stamps: list[str], migrating: bool) -> None:
    where = f"the database {shown(url)}"
    if not stamps:
        if tables:
            some = ", ".join(sorted(tables)[:3]) + (", …" if len(tables) > 3 else "")
            raise DatabaseProblem(
                f"{where} is not deltaflow's: it holds tables ({some}) but no Alembic revision; "
                "set DELTAFLOW_DATABASE_URL to deltaflow's database or to an empty one"
            )
        if not migrating:
            raise DatabaseProblem(f"{where} is empty: create deltaflow's tables with {PREPARE}")
        return
    script = script_directory()
    heads = set(script.get_heads())
    known = {revision.revision for revision in script.walk_revisions()}
    unknown = [stamp for stamp in stamps if stamp not in known]
    if unknown:
        raise DatabaseProblem(
            f"{where} is at revision {unknown[0]}, which this deltaflow (at {_joined(heads)}) "
            "does not know: a newer deltaflow migrated it, so upgrade deltaflow, or it is not "
            "deltaflow's database"
        )
    if set(stamps) != heads and not migrating:
        raise DatabaseProblem(
            f"{where} is at revision {_joined(stamps)}, older than this deltaflow's "
            f"{_joined(heads)}: migrate it with {PREPARE}"
        )


def _joined(revisions) -> str:
    return ", ".join(sorted(revisions))


def _unreachable(url: str, exc: Exception) -> str:
    reason = _reason(exc)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return (
            f"cannot open the database {shown(url)}: {reason}; set DELTAFLOW_DATABASE_URL to a "
            "SQLite file deltaflow may read and write"
        )
    if parsed.database and f'database "{parsed.database}" does not exist' in reason:
        advice = f"create it (createdb {parsed.database}) or set DELTAFLOW_DATABASE_URL to another"
    elif any(word in reason.lower() for word in ("refused", "timeout", "timed out", "resolve")):
        advice = "start the database server or correct DELTAFLOW_DATABASE_URL"
    else:
        advice = "check DELTAFLOW_DATABASE_URL and the database server"
    return f"cannot connect to the database {shown(url)}: {reason}; {advice}"


# libpq's framing around the reason: the URL in the sentence already names the host and port.
_LIBPQ_PREFIX = re.compile(
    r'^(connection failed: )?(connection to server at "[^"]*"( \([^)]*\))?, port \d+ failed: )?'
    r"(FATAL: +)?"
)


def _reason(exc: Exception) -> str:
    """The driver's own words, first line only (libpq adds hints on the lines after)."""
    if isinstance(exc, DBAPIError):
        exc = exc.orig if exc.orig is not None else exc
    message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return _LIBPQ_PREFIX.sub("", first).strip()
