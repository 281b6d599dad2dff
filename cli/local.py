"""Running a Stack in the foreground for `deltaflow up` and `deltaflow demo`."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError
from rich.console import Console

from cli.client import CliError
from cli.services import ServiceError, Stack, is_loopback
from settings import Settings, get_settings

POLL_SECONDS = 0.5


def check_port(host: str, port: int) -> None:
    """Fail early on a busy port: otherwise the readiness check could find *another* deltaflow
    answering there and we would silently talk to it."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CliError(
                f"cannot serve on {host}:{port}: {exc.strerror or exc}; is deltaflow already up? "
                "choose another --port"
            ) from None


def load_settings() -> Settings:
    """The settings, or one line naming the DELTAFLOW_* variable that is wrong."""
    try:
        return get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "DELTAFLOW_" + "_".join(map(str, first["loc"])).upper()
        raise CliError(f"{name}: {first['msg']}") from None


def auth_line(settings: Settings, host: str) -> str:
    """What `up` says about access; CliError for a host others can reach without auth."""
    if settings.auth == "required":
        line = "auth is required: every /v1 request needs an API key (Authorization: Bearer)"
        if settings.bootstrap_key is None:
            line += "; no DELTAFLOW_BOOTSTRAP_KEY, so only keys already stored work"
        return line
    if not is_loopback(host):
        raise CliError(
            f"--host {host} would let other machines reach deltaflow, but auth is off: set "
            "DELTAFLOW_AUTH=required (and DELTAFLOW_BOOTSTRAP_KEY for the first admin key) "
            "to serve others"
        )
    return f"auth is off: listening on {host} only; set DELTAFLOW_AUTH=required to serve others"


def redact(url: str) -> str:
    """The URL without its password, so it can be printed."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def describe_database(settings: Settings) -> str:
    url = settings.database_url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return f"{url} ({Path(url.removeprefix('sqlite:///')).resolve()})"
    return redact(url)


def describe_broker(settings: Settings) -> str:
    if settings.embedded_broker:
        return f"embedded SQLite queue ({settings.broker_file.resolve()})"
    return redact(settings.broker_url or "")


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def _signals(handler) -> Iterator[None]:
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def running(stack: Stack, console: Console) -> Iterator[Stack]:
    """Start the stack and always stop it; SIGTERM takes the same path as Ctrl-C, and a second
    signal while stopping is ignored so no child is left behind."""
    check_port(stack.host, stack.port)
    with _signals(_interrupt):
        try:
            with console.status("starting deltaflow: database, broker, api, worker, reaper"):
                _start(stack)
            yield stack
        finally:
            with _signals(signal.SIG_IGN), console.status("stopping deltaflow"):
                stack.stop()


def _start(stack: Stack) -> None:
    logs = f" (logs in {stack.log_dir})" if stack.log_dir else ""
    try:
        stack.start()
    except ServiceError as exc:
        raise CliError(f"{exc}{logs}") from None
    except subprocess.CalledProcessError as exc:
        raise CliError(_bootstrap_failure(exc)) from None
    except subprocess.TimeoutExpired:
        raise CliError("preparing the database and broker took too long") from None


def _bootstrap_failure(exc: subprocess.CalledProcessError) -> str:
    """worker.bootstrap says why it cannot use the database in one line; anything longer (a
    traceback) is passed on as it was, followed by the usual error line."""
    lines = (exc.stderr or "").strip().splitlines()
    if len(lines) == 1:
        return lines[0]
    sys.stderr.write(exc.stderr or "")
    return f"preparing the database and broker failed (exit code {exc.returncode})"


def wait_for_exit(stack: Stack) -> None:
    """Block until a child process dies (CliError naming it); Ctrl-C/SIGTERM interrupt."""
    while True:
        for name, proc in stack.processes.items():
            if proc.poll() is not None:
                raise CliError(f"{name} {_how(proc.returncode)}; stopping the other processes")
        time.sleep(POLL_SECONDS)


def _how(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"
