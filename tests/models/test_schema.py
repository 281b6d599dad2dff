"""check_database: which databases deltaflow uses, and the one sentence for each it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from models.migrate import script_directory
from models.schema import DatabaseProblem, check_database, migrate_database
from tests.databases import NEWER, empty, foreign, missing, newer, older, unreachable

PREPARE = "python -m worker.bootstrap (deltaflow up and deltaflow demo run it)"


def problem(url: str, *, migrating: bool = False) -> str:
    with pytest.raises(DatabaseProblem) as caught:
        check_database(url, migrating=migrating)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_database_at_the_latest_revision_is_used(database_url):
    migrate_database(database_url)
    check_database(database_url)
    check_database(database_url, migrating=True)


def test_another_applications_tables(database_url):
    foreign(database_url)
    shown = make_url(database_url).render_as_string(hide_password=True)
    expected = (
        f"the database {shown} is not deltaflow's: it holds tables (customers) but no Alembic "
        "revision; set DELTAFLOW_DATABASE_URL to deltaflow's database or to an empty one"
    )
    assert problem(database_url) == expected
    assert problem(database_url, migrating=True) == expected


def test_a_newer_deltaflows_revision(database_url):
    newer(database_url)
    head = script_directory().get_current_head()
    message = problem(database_url, migrating=True)
    assert f"is at revision {NEWER}, which this deltaflow (at {head}) does not know" in message
    assert "a newer deltaflow migrated it, so upgrade deltaflow" in message
    assert problem(database_url) == message


def test_an_older_revision_is_migrated_first(database_url):
    older(database_url)
    head = script_directory().get_revision("head")
    assert problem(database_url).endswith(
        f"is at revision {head.down_revision}, older than this deltaflow's {head.revision}: "
        f"migrate it with {PREPARE}"
    )
    migrate_database(database_url)
    check_database(database_url)


def test_an_empty_database_is_migrated_first(database_url):
    empty(database_url)
    assert problem(database_url).endswith(f" is empty: create deltaflow's tables with {PREPARE}")
    check_database(database_url, migrating=True)


def test_a_missing_sqlite_file(sqlite_url):
    path = Path(make_url(sqlite_url).database)
    assert problem(sqlite_url) == (
        f"the SQLite database {sqlite_url} does not exist (no file {path}): create it with "
        f"{PREPARE}, or set DELTAFLOW_DATABASE_URL to deltaflow's database"
    )
    assert not path.exists()  # asking did not create it
    migrate_database(sqlite_url)  # migrating does
    check_database(sqlite_url)


def test_a_sqlite_file_that_is_no_database(tmp_path):
    (tmp_path / "notes.db").write_text("not SQLite" * 100)
    assert problem(f"sqlite:///{tmp_path}/notes.db", migrating=True) == (
        f"cannot open the database sqlite:///{tmp_path}/notes.db: file is not a database; set "
        "DELTAFLOW_DATABASE_URL to a SQLite file deltaflow may read and write"
    )


def test_a_postgresql_database_that_does_not_exist(postgres_url):
    url = missing(postgres_url)
    name = make_url(url).database
    message = problem(url, migrating=True)
    assert "s3cret-pw" not in message
    shown = make_url(url).render_as_string(hide_password=True)
    assert message == (
        f'cannot connect to the database {shown}: database "{name}" does not exist; create it '
        f"(createdb {name}) or set DELTAFLOW_DATABASE_URL to another"
    )


def test_a_server_that_does_not_answer():
    url = unreachable()
    shown = make_url(url).render_as_string(hide_password=True)
    assert problem(url, migrating=True) == (
        f"cannot connect to the database {shown}: Connection refused; start the database "
        "server or correct DELTAFLOW_DATABASE_URL"
    )


@pytest.mark.parametrize(
    "url", ["mysql://root:s3cret-pw@db/deltaflow", "postgres.example.org/deltaflow"]
)
def test_a_url_deltaflow_cannot_use(url):
    message = problem(url)
    assert message.startswith("DELTAFLOW_DATABASE_URL ")
    assert "s3cret-pw" not in message
    assert message.endswith(
        "deltaflow runs on sqlite:///PATH and postgresql+psycopg://USER:PASSWORD@HOST/NAME"
    )
