"""What the CLI test modules share: running a command against a service, and the one line a
failed command prints."""

from __future__ import annotations

from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def invoke(url: str, *args: str):
    return runner.invoke(app, [*args, "--url", url])


def error_line(result) -> str:
    """The one line a failed command prints; it must have exited 1."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]
