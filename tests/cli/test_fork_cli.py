"""`deltaflow fork`, and what `show`, `jobs`, `epochs` and `watch` say of forks, against one real
service (api, worker, reaper as processes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cli.main import overrides
from cli.progress import eta
from cli.services import free_port
from tests.cli.helpers import error_line, invoke
from tests.factories import HTTP, wait_for

# tests/cli/conftest.py's service is shared by this module and others: one xdist worker runs them.
pytestmark = pytest.mark.xdist_group("cli-service")

PARENT = {
    "name": "cli fork parent",
    "network": {"layers": [2, 4, 1]},
    "optimizer": {"name": "sgd", "learning_rate": 2.0},
    "epochs": 200,
    "snapshot_every": 20,
    "dataset": {"builtin": "xor"},
}
UNKNOWN = "00000000-0000-0000-0000-000000000000"


def job(url: str, job_id: str) -> dict:
    return HTTP.get(f"{url}/v1/jobs/{job_id}").json()


def forked(url: str, *args: str) -> dict:
    """`deltaflow fork … --json`: the new job as the command printed it."""
    result = invoke(url, "fork", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def parent(url: str) -> str:
    r = HTTP.post(f"{url}/v1/jobs", json=PARENT)
    assert r.status_code == 201, r.text
    done = wait_for(url, r.json()["id"])
    assert done["status"] == "succeeded", done
    return done["id"]


@pytest.fixture(scope="module")
def watched(url: str, parent: str) -> tuple[dict, str]:
    """A fork at epoch 100 with a new learning rate and 100 more epochs, made by its short id
    and followed with --watch: (the fork as the API has it, the command's stdout)."""
    result = invoke(
        url, "fork", parent[:8], "--epoch", "100", "--set", "optimizer.learning_rate=0.5",
        "--set", "epochs=300", "--name", "cli fork", "--tag", "kind:fork", "--watch",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    fork_id = result.stdout.splitlines()[0].strip()
    assert len(fork_id) == 36, result.output
    return job(url, fork_id), result.stdout


@pytest.fixture(scope="module")
def grandchild(url: str, watched: tuple[dict, str]) -> dict:
    """A fork of the fork, at its last epoch (the default), trained 50 epochs longer."""
    created = forked(url, watched[0]["id"], "--set", "epochs=350")
    return wait_for(url, created["id"])


def test_fork_watch_goes_on_from_the_epoch(watched: tuple[dict, str], parent: str) -> None:
    fork, stdout = watched
    assert f"job {fork['id']} succeeded at epoch 300/300" in stdout
    assert (fork["parent_id"], fork["forked_at_epoch"], fork["root_id"]) == (parent, 100, parent)
    assert fork["status"] == "succeeded" and fork["epochs_done"] == 300
    assert fork["name"] == "cli fork" and fork["tags"] == {"kind": "fork"}
    assert fork["spec"]["optimizer"]["learning_rate"] == 0.5  # a number, not the text "0.5"


def test_the_override_takes_effect_after_the_fork_epoch(url: str, watched: tuple[dict, str]):
    fork = watched[0]
    query = {"start": 99, "end": 102, "fields": "learning_rate", "format": "columns"}
    columns = HTTP.get(f"{url}/v1/jobs/{fork['id']}/epochs", params=query).json()["columns"]
    assert columns == {"epoch": [99, 100, 101, 102], "learning_rate": [2.0, 2.0, 0.5, 0.5]}


def test_fork_json_defaults_to_the_last_epoch_and_takes_strings(url: str, parent: str) -> None:
    created = forked(url, parent, "--set", "optimizer.name=adam", "--set", "epochs=210")
    assert created["status"] == "queued"
    assert created["parent_id"] == parent
    assert created["forked_at_epoch"] == 200  # the parent's last stored epoch
    assert created["spec"]["optimizer"]["name"] == "adam"
    assert created["epochs_total"] == 210
    assert wait_for(url, created["id"])["epochs_done"] == 210


def test_show_names_the_parent_and_the_epoch(url: str, watched: tuple[dict, str]) -> None:
    fork = watched[0]
    result = invoke(url, "show", fork["id"][:8], "--no-plot")
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in result.stdout.splitlines() if line.count("│") == 3}  # fmt: skip
    assert rows["forked from"] == f"{fork['parent_id']} at epoch 100"
    assert rows["progress"] == "epoch 300/300 (101–300 its own)"
    assert "root" not in rows  # the parent is the root
    # The plot's history is the fork's whole one: the parent's epochs 1–100 first.
    assert "after epoch 1," in result.stdout and "after epoch 300" in result.stdout


def test_show_counts_the_forks(url: str, parent: str, grandchild: dict) -> None:
    children = HTTP.get(f"{url}/v1/jobs", params={"parent_id": parent}).json()["items"]
    tree = HTTP.get(f"{url}/v1/jobs", params={"root_id": parent}).json()["items"]
    assert len(tree) == 1 + len(children) + 1  # the parent, its forks, the grandchild
    result = invoke(url, "show", parent, "--no-plot")
    assert result.exit_code == 0, result.output
    expected = f"{len(children)}, {len(tree) - 1} in all (deltaflow jobs --parent {parent[:8]})"
    assert expected in result.stdout
    assert "forked from" not in result.stdout

    result = invoke(url, "show", grandchild["id"], "--no-plot")
    assert result.exit_code == 0, result.output
    assert f"{grandchild['parent_id']} at epoch 300" in result.stdout
    assert f"root │ {parent}" in " ".join(result.stdout.split())


def test_jobs_lists_the_forks_of_a_job(url: str, parent: str, grandchild: dict) -> None:
    def ids(*args: str) -> set[str]:
        result = invoke(url, "jobs", *args, "--json")
        assert result.exit_code == 0, result.output
        return {j["id"] for j in json.loads(result.stdout)}

    direct, tree = ids("--parent", parent[:8]), ids("--root", parent)
    assert grandchild["parent_id"] in direct and grandchild["id"] not in direct
    assert tree == direct | {grandchild["id"], parent}  # the tree includes its root


def test_epochs_own_leaves_out_the_parents(url: str, watched: tuple[dict, str]) -> None:
    fork_id = watched[0]["id"]
    whole = json.loads(invoke(url, "epochs", fork_id, "--limit", "1000", "--json").stdout)
    own = json.loads(invoke(url, "epochs", fork_id, "--limit", "1000", "--own", "--json").stdout)
    assert whole["columns"]["epoch"] == list(range(1, 301))
    assert own["columns"]["epoch"] == list(range(101, 301))
    assert own["columns"]["loss"] == whole["columns"]["loss"][100:]


def test_watch_of_a_finished_fork(url: str, watched: tuple[dict, str]) -> None:
    result = invoke(url, "watch", watched[0]["id"])
    assert result.exit_code == 0, result.output
    assert "300/300" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "network.layers=[2, 8, 1]"], "network.layers"),
        (["--set", "optimizer.learnin_rate=0.5"], "optimizer.learnin_rate"),
        (["--epoch", "5000"], "epoch"),
    ],
)
def test_refused_fork_prints_the_api_message(url: str, parent: str, args, expected) -> None:
    line = error_line(invoke(url, "fork", parent, *args))
    assert line.startswith("error: HTTP 422: ") and expected in line, line


def test_fork_of_an_unknown_job(url: str) -> None:
    line = error_line(invoke(url, "fork", UNKNOWN, "--set", "epochs=10"))
    assert line == f"error: HTTP 404: job {UNKNOWN} not found"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "epochs"], "error: --set 'epochs' is not PATH=VALUE"),
        (["--set", "=3"], "error: --set '=3' is not PATH=VALUE"),
        (["--set", "epochs=3", "--set", "epochs=4"], "error: --set epochs is given twice"),
        (["--tag", "nocolon"], "error: --tag 'nocolon' is not key:value"),
    ],
)
def test_bad_options_are_refused_before_any_request(args, expected) -> None:
    """Against a closed port: the error is about the option, so nothing was sent."""
    line = error_line(invoke(f"http://127.0.0.1:{free_port()}", "fork", UNKNOWN, *args))
    assert line.startswith(expected), line


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.05", 0.05),
        ("2000", 2000),
        ("null", None),
        ("true", True),
        ("[2, 8, 1]", [2, 8, 1]),
        ('{"builtin": "moons", "n": 200}', {"builtin": "moons", "n": 200}),
        ("adam", "adam"),
        ('"3"', "3"),
        ("3f2a9c1e-0000-4000-8000-000000000000", "3f2a9c1e-0000-4000-8000-000000000000"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_set_values_are_json_when_they_parse_else_text(text: str, value) -> None:
    assert overrides([f" optimizer.x ={text}"]) == {"optimizer.x": value}


def test_eta_of_a_fork_counts_only_its_own_epochs() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    # Forked at 900 of 1000: 50 epochs of its own in 10 s, so 50 more take 10 s.
    started = (now - timedelta(seconds=10)).isoformat()
    running = {"status": "running", "epochs_done": 950, "epochs_total": 1000,
               "forked_at_epoch": 900, "started_at": started}  # fmt: skip
    assert eta(running, now) == "0:00:10"
    assert eta(running | {"epochs_done": 900}, now) == "-:--:--"  # none of its own yet
