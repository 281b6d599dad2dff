"""`deltaflow up` as a real process: with auth off it serves the loopback interface only, says
so, and refuses any other host; --json prints one line a script can read."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.services import ServiceError, Stack, free_port, is_loopback
from tests.factories import HTTP

AUTH_OFF = "auth is off: listening on 127.0.0.1 only; set DELTAFLOW_AUTH=required to serve others"
runner = CliRunner()


def up(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "DELTAFLOW_DATABASE_URL": f"sqlite:///{tmp_path}/up.db"}
    for name in ("DELTAFLOW_AUTH", "DELTAFLOW_BROKER_URL", "DELTAFLOW_BOOTSTRAP_KEY"):
        env.pop(name, None)
    argv = [sys.executable, "-m", "cli.main", "up", *args]
    return subprocess.Popen(
        argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def read_until(proc: subprocess.Popen, done: str, timeout: float = 60.0) -> list[str]:
    """stdout lines up to and including the first that contains `done`."""
    lines: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if selector.select(timeout=0.5):
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line.rstrip("\n"))
                if done in line:
                    return lines
    proc.kill()
    raise AssertionError(f"no {done!r} from up: {lines} {proc.stderr.read()}")


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    return out, err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "example.org"])
def test_up_refuses_a_host_others_can_reach_while_auth_is_off(host: str) -> None:
    """Refused before anything starts (and Stack.start refuses too, tested below)."""
    result = runner.invoke(app, ["up", "--host", host, "--port", str(free_port())])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"error: --host {host} would let other machines reach deltaflow, but auth is off: set "
        "DELTAFLOW_AUTH=required (and DELTAFLOW_BOOTSTRAP_KEY for the first admin key) to "
        "serve others"
    )


def test_up_json_serves_loopback_and_prints_one_line_for_scripts(tmp_path: Path) -> None:
    port = free_port()
    proc = up(tmp_path, "--port", str(port), "--json")
    try:
        record = json.loads(read_until(proc, "{")[0])
        assert record["url"] == f"http://127.0.0.1:{port}"
        assert record["auth"] == "off"
        assert str(tmp_path / "up.db") in record["database"]
        assert HTTP.get(f"{record['url']}/v1/jobs", timeout=5).json()["items"] == []
    finally:
        out, err = stop(proc)
    assert out == ""  # nothing after the record: the children's banners went to stderr
    assert err.splitlines()[0] == AUTH_OFF
    assert "deltaflow stopped" in err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("localhost", True), ("::1", True),
     ("[::1]", True), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("host", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_stack_without_auth_will_not_start_on_other_interfaces() -> None:
    """The guard under `up`: nothing is started (no bootstrap, no process) for such a stack."""
    stack = Stack(host="0.0.0.0", port=free_port(), env={"DELTAFLOW_AUTH": "off"})
    with pytest.raises(ServiceError, match=r"will not listen on 0\.0\.0\.0"):
        stack.start()
    assert stack.processes == {}
    # With auth required the same host is allowed (checked without starting anything).
    Stack(host="0.0.0.0", env={"DELTAFLOW_AUTH": "required"}).check_exposure()


def test_a_bad_setting_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "DELTAFLOW_AUTH": "maybe"}
    argv = [sys.executable, "-m", "cli.main", "up", "--port", str(free_port())]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == "error: DELTAFLOW_AUTH: Input should be 'required' or 'off'"


def test_a_key_that_is_not_one_word_is_one_line() -> None:
    result = runner.invoke(app, ["jobs", "--key", "two words", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: the API key (--key or DELTAFLOW_KEY) must be one printable word"
    )
