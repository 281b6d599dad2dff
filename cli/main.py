"""`deltaflow` — the command line (typer + rich). It speaks HTTP to the API; `up` and `demo`
start the API, worker and reaper as processes (cli.services.Stack)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from cli.client import Client, CliError
from cli.common import (
    DEFAULT_URL,
    AsJson,
    JobId,
    Key,
    Url,
    app,
    console,
    errors,
    friendly,
    print_json,
    read_json_object,
    run,
    tag_pairs,
)
from cli.demo import run_demo
from cli.local import (
    auth_line,
    describe_broker,
    describe_database,
    load_settings,
    running,
    wait_for_exit,
)
from cli.progress import ended_cancelled, finish, follow
from cli.services import Stack
from models.status import TERMINAL, JobStatus
from settings import Settings

__all__ = ["app"]
Port = Annotated[int, typer.Option(min=1, max=65535, help="Port of the API.")]


@app.callback()
def main() -> None:
    """deltaflow's command line."""


@app.command()
@friendly
def up(
    host: Annotated[
        str, typer.Option(help="Interface the API listens on (only loopback while auth is off).")
    ] = "127.0.0.1",
    port: Port = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    as_json: AsJson = False,
) -> None:
    """Run the API, worker(s) and reaper here until Ctrl-C or SIGTERM."""
    settings = load_settings()
    access = auth_line(settings, host)
    stack = Stack(host, port, workers, log_dir=None, stdout_to_stderr=as_json)
    # With --json, stdout carries only the record; people's lines go to stderr.
    say = errors if as_json else console
    say.print(access, markup=False, highlight=False, soft_wrap=True)
    try:
        with running(stack, say):
            if as_json:
                print_json(up_record(stack, settings), compact=True)
            else:
                print_up(stack, settings)
            wait_for_exit(stack)
    except KeyboardInterrupt:
        say.print("deltaflow stopped")


def up_record(stack: Stack, settings: Settings) -> dict:
    return {
        "url": stack.url,
        "docs": f"{stack.url}/docs",
        "dashboard": f"{stack.url}/",
        "auth": settings.auth,
        "workers": stack.workers,
        "database": describe_database(settings),
        "broker": describe_broker(settings),
    }


def print_up(stack: Stack, settings: Settings) -> None:
    url = stack.url
    console.print(f"[bold green]deltaflow is up[/] with {stack.workers} worker(s) and a reaper")
    console.print(f"  dashboard {url}/", highlight=False)
    console.print(f"  API       {url}\n  docs      {url}/docs", highlight=False)
    console.print(f"  database  {describe_database(settings)}", markup=False)
    console.print(f"  broker    {describe_broker(settings)}", markup=False)
    console.print("Press Ctrl-C to stop.")


@app.command()
@friendly
def demo(
    port: Port = 8000,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs to train.")] = 5000,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Train the seed's example (XOR, 2-4-1 sigmoid) on a local stack; show how it learned.

    With DELTAFLOW_AUTH=required it uses --key, else DELTAFLOW_BOOTSTRAP_KEY."""
    run_demo(port, epochs, console, key=key, as_json=as_json)


@app.command()
@friendly
def submit(
    spec: Annotated[
        str, typer.Argument(help="JSON file: TrainSpec fields and a dataset; - reads stdin.")
    ],
    watch: Annotated[bool, typer.Option("--watch", help="Follow the job until it ends.")] = False,
    name: Annotated[str | None, typer.Option(help="The job's name (overrides the file's).")] = None,
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Submit a training job; prints its id."""
    body = read_spec(spec)
    if name:
        body["name"] = name
    with Client(url, key) as client:
        started(client, client.submit(body), watch, as_json)


def started(client: Client, job: dict, watch: bool, as_json: bool) -> None:
    """What submit and fork print of the new job: its id (with --json, the job as JSON); with
    --watch a progress bar until it ends, then a closing line (exit 1 unless it succeeded)."""
    if not as_json:
        print(job["id"])
    if watch:
        job = follow(client, job["id"], console, show=not as_json)
    if as_json:
        print_json(job)
    if watch:
        finish(job, console, quiet=as_json)


def read_spec(source: str) -> dict:
    body = read_json_object(source, "a JSON object of TrainSpec fields and a dataset")
    if "dataset" not in body:
        raise CliError(f'{source} has no "dataset"; add e.g. "dataset": {{"builtin": "xor"}}')
    return body


@app.command()
@friendly
def fork(
    job_id: JobId,
    epoch: Annotated[
        int | None,
        typer.Option(min=0, help="The stored epoch to go on from (default: the job's last)."),
    ] = None,
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="PATH=VALUE",
            help="Change a setting from the next epoch on (repeatable): a grid path such as "
            "optimizer.learning_rate=0.05 or epochs=2000, or dataset=ID (or a JSON dataset "
            'such as {"builtin": "moons"}). VALUE is read as JSON when it is JSON, else as a '
            "string.",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="The fork's name.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Tag the fork key:value (repeatable).")
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the fork until it ends.")] = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Start a new job from a job's exact state after an epoch (parameters, optimizer, random
    numbers), with changed settings; prints its id. Its epochs count from the parent's: a fork
    at 300 with --set epochs=500 trains epochs 301-500."""
    body = fork_body(epoch, overrides(assignments or []), name, tag_pairs(tag or []))
    with Client(url, key) as client:
        started(client, client.fork(client.resolve(job_id), body), watch, as_json)


def fork_body(epoch: int | None, changes: dict, name: str | None, tagged: dict) -> dict:
    """POST /v1/jobs/{id}/fork's body; what is not given is left to the server's defaults."""
    body: dict[str, Any] = {"epoch": epoch, "overrides": changes, "name": name, "tags": tagged}
    return {k: v for k, v in body.items() if v is not None and v != {}}


def overrides(assignments: list[str]) -> dict[str, Any]:
    """{path: value} from PATH=VALUE items: 0.05 → 0.05, null → None, [2, 8, 1] → a list,
    '"3"' → the string 3, and what is not JSON (adam, a data set's id) → itself as a string."""
    changes: dict[str, Any] = {}
    for item in assignments:
        path, equals, text = item.partition("=")
        path = path.strip()
        if not equals or not path:
            raise CliError(
                f"--set {item!r} is not PATH=VALUE, e.g. --set optimizer.learning_rate=0.05"
            )
        if path in changes:
            raise CliError(f"--set {path} is given twice")
        try:
            changes[path] = json.loads(text)
        except json.JSONDecodeError:
            changes[path] = text
    return changes


@app.command()
@friendly
def watch(
    job_id: JobId,
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Follow a job until it ends: epoch k/E, loss, ETA. Exits 1 unless it succeeded."""
    with Client(url, key) as client:
        job = follow(client, client.resolve(job_id), console, show=not as_json)
    if as_json:
        print_json(job)
    finish(job, console, quiet=as_json)


@app.command()
@friendly
def cancel(
    job_id: JobId,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the job until it has stopped.")
    ] = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Cancel a job: a queued one at once, a running one at its next flush (its stored epochs
    are kept). With --wait, exits 0 once the job has ended cancelled."""
    with Client(url, key) as client:
        job = client.cancel(client.resolve(job_id))
        if not as_json:
            cancelled = job["status"] == JobStatus.CANCELLED
            print(
                JobStatus.CANCELLED
                if cancelled
                else "cancel requested; the job stops at its next flush"
            )
        if wait and job["status"] not in TERMINAL:
            job = follow(client, job["id"], console, show=not as_json)
    if as_json:
        print_json(job)
    if wait:
        ended_cancelled(job, console, quiet=as_json)


# The other commands register themselves on the same app, after the ones above.
from cli import browse, health, history, keys, sweep  # noqa: E402, F401

if __name__ == "__main__":
    run()
