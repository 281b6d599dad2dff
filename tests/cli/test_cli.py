"""The `deltaflow` command against one real service (api, worker, reaper as processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.plot import HEIGHT, MAX_WIDTH
from cli.services import free_port

# tests/cli/conftest.py's service is shared by this module and others: one xdist worker runs them.
pytestmark = pytest.mark.xdist_group("cli-service")

XOR_SPEC = {
    "network": {"layers": [2, 4, 1]},
    "optimizer": {"name": "sgd", "learning_rate": 2.0},
    "epochs": 500,
    "snapshot_every": 50,
    "dataset": {"builtin": "xor"},
}
runner = CliRunner()


@pytest.fixture(scope="module")
def job_id(url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One XOR job submitted with --watch; the other tests read it back."""
    spec = tmp_path_factory.mktemp("spec") / "xor.json"
    spec.write_text(json.dumps(XOR_SPEC))
    result = runner.invoke(app, ["submit", str(spec), "--watch", "--name", "cli xor", "--url", url])
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0].strip()
    assert len(first) == 36, result.output
    assert "succeeded" in result.stdout
    return first


def test_submit_watch_prints_the_id(job_id: str) -> None:
    assert job_id.count("-") == 4


def test_jobs_json_lists_the_job(url: str, job_id: str) -> None:
    result = runner.invoke(app, ["jobs", "--json", "--url", url])
    assert result.exit_code == 0, result.output
    jobs = {job["id"]: job for job in json.loads(result.stdout)}
    assert jobs[job_id]["status"] == "succeeded"
    assert jobs[job_id]["epochs_done"] == 500


def test_jobs_filters_by_status(url: str, job_id: str) -> None:
    result = runner.invoke(app, ["jobs", "--status", "failed", "--json", "--url", url])
    assert result.exit_code == 0, result.output
    assert job_id not in result.stdout
    table = runner.invoke(app, ["jobs", "--status", "succeeded", "--url", url])
    assert table.exit_code == 0, table.output
    assert job_id[:8] in table.stdout


def test_show_prints_name_and_a_narrow_loss_plot(url: str, job_id: str) -> None:
    result = runner.invoke(app, ["show", job_id[:8], "--url", url])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "cli xor" in result.stdout
    caption = lines.index("loss by epoch, log scale: ━━ loss")
    plot = lines[caption + 1 : caption + 1 + HEIGHT]
    assert all(len(line) <= MAX_WIDTH for line in plot)
    top = next(i for i, line in enumerate(plot) if "┌" in line)
    bottom = next(i for i, line in enumerate(plot) if "└" in line)
    assert bottom - top > 5, "\n".join(plot)
    # The XOR loss falls: the curve's first column of dots is higher than its last.
    left, right = plot[top].index("┌"), plot[top].index("┐")
    canvas = [line[left + 1 : right] for line in plot[top + 1 : bottom]]
    rows_with = [[row for row, text in enumerate(canvas) if text[col].strip()] for col in (0, -1)]
    assert rows_with[0] and rows_with[1], "\n".join(plot)
    assert min(rows_with[0]) < max(rows_with[1])
    assert "after epoch 500" in result.stdout


def test_show_json_and_no_plot_draw_nothing(url: str, job_id: str) -> None:
    as_json = runner.invoke(app, ["show", job_id, "--json", "--url", url])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["id"] == job_id
    plain = runner.invoke(app, ["show", job_id, "--no-plot", "--url", url])
    assert plain.exit_code == 0, plain.output
    for result in (as_json, plain):
        assert not any("\u2800" <= c <= "\u28ff" for c in result.stdout)  # braille dots
        assert "log scale" not in result.stdout


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["jobs"], list),
        (["show", "ID"], dict),
        (["watch", "ID"], dict),
        (["epochs", "ID", "--points", "10"], dict),
        (["trajectory", "ID", "--layer", "2", "--bias", "0"], dict),
        (["batches"], list),
        (["keys", "list"], list),  # with auth off the local user may manage keys
    ],
)
def test_json_is_all_that_is_printed(url: str, job_id: str, args: list[str], kind: type) -> None:
    argv = [job_id if a == "ID" else a for a in args]
    result = runner.invoke(app, [*argv, "--json", "--url", url])
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.stdout), kind)
    assert result.stderr == ""


def test_keys_with_auth_off(url: str) -> None:
    created = runner.invoke(app, ["keys", "create", "--name", "local", "--json", "--url", url])
    assert created.exit_code == 0, created.output
    record = json.loads(created.stdout)
    assert record["key"].startswith("dfk_") and record["owner"] == "default"
    revoked = runner.invoke(app, ["keys", "revoke", record["id"], "--json", "--url", url])
    assert json.loads(revoked.stdout)["revoked_at"] is not None


def test_watch_of_a_finished_job(url: str, job_id: str) -> None:
    result = runner.invoke(app, ["watch", job_id, "--url", url])
    assert result.exit_code == 0, result.output
    assert "500/500" in result.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"network": {"layers": [3, 4, 1]}}, "x must have shape"),
        ({"network": {"layers": [2]}}, "network.layers"),
    ],
)
def test_submit_rejected_prints_the_api_message(
    url: str, tmp_path: Path, change: dict, expected: str
) -> None:
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({**XOR_SPEC, **change}))
    result = runner.invoke(app, ["submit", str(spec), "--url", url])
    assert result.exit_code != 0
    assert expected in result.output
    assert "HTTP 422" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_job_is_one_line(url: str) -> None:
    result = runner.invoke(app, ["show", "00000000-0000-0000-0000-000000000000", "--url", url])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: HTTP 404: job 00000000-0000-0000-0000-000000000000 not found"
    )


@pytest.mark.parametrize("args", [["jobs"], ["show", "abc"], ["watch", "abc"], ["submit", "SPEC"]])
def test_closed_port_cannot_reach(args: list[str], tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(XOR_SPEC))
    argv = [str(spec) if a == "SPEC" else a for a in args]
    closed = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, [*argv, "--url", closed])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"cannot reach deltaflow at {closed}" in lines[0]


def test_demo_trains_and_reports(tmp_path: Path) -> None:
    env = {**os.environ, "DELTAFLOW_DATABASE_URL": f"sqlite:///{tmp_path}/demo.db"}
    env.pop("DELTAFLOW_BROKER_URL", None)
    argv = [sys.executable, "-m", "cli.main", "demo", "--port", str(free_port()), "--epochs", "300"]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "w^1_{0,0}" in done.stdout
    assert "b^1_{0}" in done.stdout
    assert "succeeded" in done.stdout
    assert "300/300" in done.stdout
    assert str(tmp_path / "demo.db") in done.stdout


@pytest.mark.parametrize(
    ("argv", "sentence"),
    [
        (["jobs", "--bogus"], "No such option: --bogus (see 'deltaflow jobs --help')"),
        (["jobz"], "No such command 'jobz'"),
        (["show"], "Missing argument"),
    ],
)
def test_usage_errors_are_one_line_too(argv, sentence):
    """The installed entry point (cli.main:run), not typer's test runner: typer's own usage
    errors are a multi-line box unless run() turns them into a line."""
    entry = "from cli.main import run; run()"
    done = subprocess.run(
        [sys.executable, "-c", entry, *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("error: ") and sentence in done.stderr, done.stderr
