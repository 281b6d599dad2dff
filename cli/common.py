"""What every `deltaflow` command shares: the typer app, the consoles, the common options and
the `friendly` wrapper that turns a CliError into one red line and exit code 1."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cli.client import CliError

app = typer.Typer(
    help="deltaflow: train neural networks by backpropagation, every epoch kept.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
# Errors are one line: never wrapped, never read as rich markup (messages quote JSON lists).
errors = Console(stderr=True, soft_wrap=True, highlight=False)

DEFAULT_URL = "http://127.0.0.1:8000"
Url = Annotated[
    str, typer.Option("--url", envvar="DELTAFLOW_URL", help="The deltaflow API to talk to.")
]
Key = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="DELTAFLOW_KEY",
        show_default=False,
        help="API key, sent as Authorization: Bearer KEY (needed when the service requires auth).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
JobId = Annotated[str, typer.Argument(help="The job's id (or its first characters).")]


def friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Every failure the user can act on ends as one red line and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CliError as exc:
            errors.print(f"error: {exc}", style="red", markup=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            errors.print("interrupted", style="yellow")
            raise typer.Exit(130) from None

    return wrapper


def print_json(data: Any, *, compact: bool = False) -> None:
    """Indented for people, or one line (compact) for a reader of a long-running command."""
    print(json.dumps(data, indent=None if compact else 2), flush=True)


def read_json_object(source: str, what: str = "a JSON object") -> dict:
    """The JSON object in file `source` (- reads stdin); CliError if unreadable or not one."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{source} is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise CliError(f"{source} must hold {what}")
    return body
