"""`deltaflow` — the command line (typer + rich). It speaks HTTP to the API; `up` and `demo`
start the API, worker and reaper as processes (cli.services.Stack)."""

from __future__ import annotations

from enum import StrEnum
from itertools import islice
from typing import Annotated

import typer

from cli.client import TERMINAL, Client, CliError
from cli.common import (
    DEFAULT_URL,
    AsJson,
    JobId,
    Url,
    app,
    console,
    friendly,
    print_json,
    read_json_object,
)
from cli.demo import run_demo
from cli.local import describe_broker, describe_database, running, wait_for_exit
from cli.progress import ended_cancelled, finish, follow
from cli.render import fmt_loss, job_table, jobs_table, sparkline
from cli.services import Stack
from settings import get_settings

__all__ = ["app"]
Port = Annotated[int, typer.Option(min=1, max=65535, help="Port of the API.")]


class Status(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Order(StrEnum):
    newest = "-created_at"
    oldest = "created_at"
    lowest_loss = "final_loss"
    highest_loss = "-final_loss"


@app.callback()
def main() -> None:
    """deltaflow's command line."""


@app.command()
@friendly
def up(
    host: Annotated[str, typer.Option(help="Interface the API listens on.")] = "127.0.0.1",
    port: Port = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the API, worker(s) and reaper here until Ctrl-C or SIGTERM."""
    settings = get_settings()
    stack = Stack(host, port, workers, log_dir=None)
    try:
        with running(stack, console):
            url = stack.url
            console.print(f"[bold green]deltaflow is up[/] with {workers} worker(s) and a reaper")
            console.print(f"  API       {url}\n  docs      {url}/docs", highlight=False)
            console.print(f"  database  {describe_database(settings)}", markup=False)
            console.print(f"  broker    {describe_broker(settings)}", markup=False)
            console.print("Press Ctrl-C to stop.")
            wait_for_exit(stack)
    except KeyboardInterrupt:
        console.print("deltaflow stopped")


@app.command()
@friendly
def demo(
    port: Port = 8000,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs to train.")] = 5000,
    as_json: AsJson = False,
) -> None:
    """Train the seed's example (XOR, 2-4-1 sigmoid) on a local stack; show how it learned."""
    run_demo(port, epochs, console, as_json=as_json)


@app.command()
@friendly
def submit(
    spec: Annotated[
        str, typer.Argument(help="JSON file: TrainSpec fields and a dataset; - reads stdin.")
    ],
    watch: Annotated[bool, typer.Option("--watch", help="Follow the job until it ends.")] = False,
    name: Annotated[str | None, typer.Option(help="The job's name (overrides the file's).")] = None,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Submit a training job; prints its id."""
    body = read_spec(spec)
    if name:
        body["name"] = name
    with Client(url) as client:
        job = client.submit(body)
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
def watch(
    job_id: JobId,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Follow a job until it ends: epoch k/E, loss, ETA. Exits 1 unless it succeeded."""
    with Client(url) as client:
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
    as_json: AsJson = False,
) -> None:
    """Cancel a job: a queued one at once, a running one at its next flush (its stored epochs
    are kept). With --wait, exits 0 once the job has ended cancelled."""
    with Client(url) as client:
        job = client.cancel(client.resolve(job_id))
        if not as_json:
            cancelled = job["status"] == "cancelled"
            print("cancelled" if cancelled else "cancel requested; the job stops at its next flush")
        if wait and job["status"] not in TERMINAL:
            job = follow(client, job["id"], console, show=not as_json)
    if as_json:
        print_json(job)
    if wait:
        ended_cancelled(job, console, quiet=as_json)


@app.command()
@friendly
def jobs(
    limit: Annotated[int, typer.Option(min=1, help="How many jobs to list.")] = 20,
    status: Annotated[
        list[Status] | None, typer.Option(help="Only jobs in this state (repeatable: any of).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Only jobs whose name starts so.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Only jobs tagged key:value (repeatable: all of).")
    ] = None,
    batch: Annotated[str | None, typer.Option(help="Only the jobs of this batch (id).")] = None,
    order_by: Annotated[Order, typer.Option(help="Sort order.")] = Order.newest,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Jobs with their status, progress and loss; filtered and sorted by the server."""
    for t in tag or []:
        if not t.partition(":")[0] or ":" not in t:
            raise CliError(f"--tag {t!r} is not key:value")
    with Client(url) as client:
        batch_id = client.resolve(batch, "batch") if batch else None
        found = client.pages(
            "/v1/jobs",
            limit=min(limit, 500),
            status=[s.value for s in status or []] or None,
            name=name,
            tag=tag or None,
            batch_id=batch_id,
            order_by=order_by.value,
        )
        items = list(islice(found, limit))
    if as_json:
        print_json(items)
    else:
        console.print(jobs_table(items, console.width, order_by.value))


@app.command()
@friendly
def show(
    job_id: JobId,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """One job: its fields, its loss curve as a sparkline, and its error if it failed."""
    with Client(url) as client:
        job = client.job(client.resolve(job_id))
        if as_json:
            print_json(job)
            return
        losses = [e["loss"] for e in client.epochs(job["id"])]
    console.print(job_table(job))
    if losses:
        line = f"{fmt_loss(losses[0])} {sparkline(losses)} {fmt_loss(losses[-1])}"
        console.print(f"loss over {len(losses)} epochs (log scale):", highlight=False)
        console.print(f"  {line}", soft_wrap=True, highlight=False)
    else:
        console.print("no epochs stored yet")
    if job["error"]:
        console.print(f"error: {job['error']}", style="red", markup=False, soft_wrap=True)


# The history and batch commands register themselves on the same app, after the ones above.
from cli import history, sweep  # noqa: E402, F401

if __name__ == "__main__":
    app(prog_name="deltaflow")
