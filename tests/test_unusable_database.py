"""What a person sees when deltaflow cannot use its database, at every entry point run as a
real process — `deltaflow up` and `demo` (through worker.bootstrap), the API under uvicorn, a
Celery worker, the reaper: the one sentence check_database words, never a traceback, and a
non-zero exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.services import free_port, worker_command
from models.schema import DatabaseProblem, check_database
from tests import databases


def command(entry: str) -> list[str]:
    py = [sys.executable, "-m"]
    port = str(free_port())
    api = ["uvicorn", "api.app:create_app", "--factory", "--log-level", "warning"]
    return {
        "up": [*py, "cli.main", "up", "--port", port],
        "demo": [*py, "cli.main", "demo", "--port", port, "--epochs", "10"],
        "api": [*py, *api, "--port", port],
        "worker": worker_command("unusable"),
        "reaper": [*py, "worker.reaper"],
    }[entry]


def sentence(url: str, entry: str) -> str:
    with pytest.raises(DatabaseProblem) as caught:
        check_database(url, migrating=entry in {"up", "demo"})  # those migrate first
    return str(caught.value)


def what_is_seen(entry: str, message: str) -> tuple[int, list[str]]:
    """The exit status and the stderr lines each entry point must give."""
    if entry in {"up", "demo"}:
        return 1, [f"error: {message}"]  # the CLI's error line (cli/common.py)
    if entry == "api":  # uvicorn's format, and its own closing line
        return 3, [f"ERROR:    {message}", "ERROR:    Application startup failed. Exiting."]
    return 1, [message]


def run(entry: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELTAFLOW_")}
    env["DELTAFLOW_DATABASE_URL"] = url
    # Celery warns when it runs as root (as CI does); that is no part of what is tested here.
    env["PYTHONWARNINGS"] = "ignore:You're running the worker with superuser privileges"
    return subprocess.run(
        command(entry), env=env, cwd=cwd, capture_output=True, text=True, timeout=90
    )


# Each case at least once, on both databases, at every entry point (a process start costs about
# two seconds; tests/models/test_schema.py words every case on both databases in-process).
CASES = [
    ("up", "postgres", "missing"),
    ("up", None, "unreachable"),
    ("up", "sqlite", "foreign"),
    ("demo", "postgres", "newer"),
    ("api", "sqlite", "older"),
    ("worker", "postgres", "empty"),
    ("reaper", "sqlite", "missing"),
]


def make_database(request: pytest.FixtureRequest, kind: str | None, case: str) -> str:
    if case == "unreachable":
        return databases.unreachable()
    url = request.getfixturevalue(f"{kind}_url")
    if case == "missing":  # a SQLite file nobody made yet, or a PostgreSQL database
        return url if kind == "sqlite" else databases.missing(url)
    return getattr(databases, case)(url)


@pytest.mark.parametrize(
    ("entry", "kind", "case"), CASES, ids=["-".join(map(str, c)) for c in CASES]
)
def test_one_sentence_and_a_failing_exit(request, tmp_path, entry, kind, case):
    url = make_database(request, kind, case)
    message = sentence(url, entry)
    done = run(entry, url, tmp_path)
    status, lines = what_is_seen(entry, message)
    assert (done.returncode, done.stderr.splitlines()) == (status, lines), done.stderr
    assert "s3cret-pw" not in done.stdout + done.stderr
