"""--key and `deltaflow keys` against a real service that requires API keys (api, worker,
reaper as processes, DELTAFLOW_AUTH=required with a bootstrap admin key)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.factories import running, sqlite_stack

# One xdist worker runs the module, so its service starts once.
pytestmark = pytest.mark.xdist_group("cli-keys")

BOOTSTRAP = secrets.token_urlsafe(32)
runner = CliRunner()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("keys")
    stack = sqlite_stack(tmp, DELTAFLOW_AUTH="required", DELTAFLOW_BOOTSTRAP_KEY=BOOTSTRAP)
    with running(stack):
        yield stack.url


def invoke(url: str, *args: str, key: str | None = None):
    """The command with DELTAFLOW_KEY set to `key` (unset when None)."""
    return runner.invoke(app, [*args, "--url", url], env={"DELTAFLOW_KEY": key})


def error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def team_key(url: str) -> dict:
    """A key for owner ml, created by the bootstrap admin key: the record with the key."""
    result = invoke(url, "keys", "create", "--name", "ci", "--owner", "ml", "--json", key=BOOTSTRAP)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("args", [["jobs"], ["keys", "list"], ["show", "abc"], ["batches"]])
def test_without_a_key_one_line_says_how_to_pass_one(url: str, args: list[str]) -> None:
    assert error_line(invoke(url, *args)) == (
        f"error: deltaflow at {url} needs an API key: pass --key or set DELTAFLOW_KEY"
    )


def test_an_unknown_key_is_refused(url: str) -> None:
    result = runner.invoke(app, ["jobs", "--url", url, "--key", "dfk_" + "x" * 43])
    assert error_line(result) == (
        f"error: deltaflow at {url} refused the API key: the API key is not valid"
    )


def test_keys_create_json_is_the_record_with_the_key(team_key: dict) -> None:
    assert team_key["key"].startswith("dfk_")
    assert team_key["key"].startswith(team_key["prefix"])
    assert (team_key["name"], team_key["owner"], team_key["admin"]) == ("ci", "ml", False)
    assert team_key["revoked_at"] is None


def test_keys_create_prints_only_the_key_on_stdout_and_warns(url: str) -> None:
    result = invoke(url, "keys", "create", "--name", "alice", "--admin", key=BOOTSTRAP)
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("dfk_") and "\n" not in key
    assert "created admin key" in result.stderr
    assert "will not be shown again" in result.stderr
    # The new admin key works at once: it lists keys.
    assert invoke(url, "keys", "list", "--json", key=key).exit_code == 0


def test_keys_list_shows_records_but_never_keys(url: str, team_key: dict) -> None:
    as_json = invoke(url, "keys", "list", "--json", key=BOOTSTRAP)
    assert as_json.exit_code == 0, as_json.output
    listed = {k["id"]: k for k in json.loads(as_json.stdout)}
    assert listed[team_key["id"]]["owner"] == "ml"
    assert "key" not in listed[team_key["id"]]
    table = invoke(url, "keys", "list", key=BOOTSTRAP)
    assert table.exit_code == 0, table.output
    assert team_key["id"][:8] in table.stdout
    assert team_key["prefix"] in table.stdout
    assert team_key["key"] not in table.stdout


def test_a_team_key_sees_its_jobs_but_may_not_manage_keys(url: str, team_key: dict) -> None:
    jobs = invoke(url, "jobs", "--json", key=team_key["key"])
    assert jobs.exit_code == 0, jobs.output
    assert json.loads(jobs.stdout) == []
    assert error_line(invoke(url, "keys", "list", key=team_key["key"])).startswith(
        "error: HTTP 403: "
    )


def test_a_revoked_key_is_refused(url: str) -> None:
    created = invoke(url, "keys", "create", "--name", "temp", "--json", key=BOOTSTRAP)
    record = json.loads(created.stdout)
    assert invoke(url, "jobs", "--json", key=record["key"]).exit_code == 0

    revoked = invoke(url, "keys", "revoke", record["id"][:8], "--json", key=BOOTSTRAP)
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.stdout)["revoked_at"] is not None
    assert error_line(invoke(url, "jobs", key=record["key"])) == (
        f"error: deltaflow at {url} refused the API key: the API key was revoked"
    )
    again = invoke(url, "keys", "revoke", record["id"], key=BOOTSTRAP)
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(f"revoked key {record['id']} (temp, owner default)")


def test_revoking_an_unknown_key_is_one_line(url: str) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    assert error_line(invoke(url, "keys", "revoke", unknown, key=BOOTSTRAP)) == (
        f"error: HTTP 404: API key {unknown} not found"
    )
