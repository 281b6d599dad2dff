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
from deltaflow.errors import DeltaflowError

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
        except DeltaflowError as exc:
            errors.print(f"error: {exc}", style="red", markup=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            errors.print("interrupted", style="yellow")
            raise typer.Exit(130) from None

    return wrapper


def run() -> None:
    """The `deltaflow` entry point: the typer app, with usage errors (an unknown command or
    option, a missing argument) as one line too, and click's exit code 2 for them."""
    try:
        code = app(prog_name="deltaflow", standalone_mode=False)
    except Exception as exc:
        if not _is_click_error(exc):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # the help text, as `deltaflow` alone asks for
        else:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            errors.print(f"error: {exc.format_message()}{hint}", style="red", markup=False)
        code = exc.exit_code
    sys.exit(code or 0)


def _is_click_error(exc: Exception) -> bool:
    # typer runs on a copy of click that it does not export, so its exceptions are known by
    # click's interface (format_message, exit_code) rather than by class.
    return callable(getattr(exc, "format_message", None)) and hasattr(exc, "exit_code")


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


def tag_pairs(items: list[str]) -> dict[str, str]:
    """{key: value} from --tag key:value options; CliError for one without a key or a colon."""
    pairs = [item.partition(":") for item in items]
    for item, (key, colon, _) in zip(items, pairs, strict=True):
        if not colon or not key:
            raise CliError(f"--tag {item!r} is not key:value")
    return {key: value for key, _, value in pairs}
