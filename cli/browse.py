"""Looking at jobs: `jobs` (a coloured table, filtered and sorted by the server) and `show`
(one job with a small plot of its loss). Registered on cli.main's typer app."""

from __future__ import annotations

from enum import StrEnum
from itertools import islice
from typing import Annotated

import typer

from cli.client import Client
from cli.common import (
    DEFAULT_URL,
    AsJson,
    JobId,
    Key,
    Url,
    app,
    console,
    friendly,
    print_json,
    tag_pairs,
)
from cli.plot import loss_plot
from cli.tables import fmt_loss, job_table, jobs_table
from models.status import JobStatus

PLOT_POINTS = 200


class Order(StrEnum):
    newest = "-created_at"
    oldest = "created_at"
    lowest_loss = "final_loss"
    highest_loss = "-final_loss"


@app.command()
@friendly
def jobs(
    limit: Annotated[int, typer.Option(min=1, help="How many jobs to list.")] = 20,
    status: Annotated[
        list[JobStatus] | None,
        typer.Option(help="Only jobs in this state (repeatable: any of)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Only jobs whose name starts so.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Only jobs tagged key:value (repeatable: all of).")
    ] = None,
    batch: Annotated[str | None, typer.Option(help="Only the jobs of this batch (id).")] = None,
    parent: Annotated[
        str | None, typer.Option(help="Only the forks of this job (id), not theirs.")
    ] = None,
    root: Annotated[
        str | None,
        typer.Option(help="Only this job and every fork below it (id of a tree's first job)."),
    ] = None,
    order_by: Annotated[Order, typer.Option(help="Sort order.")] = Order.newest,
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Jobs with their status, progress and loss; filtered and sorted by the server."""
    tag_pairs(tag or [])  # each one checked before any request
    with Client(url, key) as client:
        batch_id = client.resolve(batch, "batch") if batch else None
        parent_id = client.resolve(parent) if parent else None
        root_id = client.resolve(root) if root else None
        found = client.pages(
            "/v1/jobs",
            limit=min(limit, 500),
            status=[s.value for s in status or []] or None,
            name=name,
            tag=tag or None,
            batch_id=batch_id,
            parent_id=parent_id,
            root_id=root_id,
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
    plot: Annotated[
        bool, typer.Option("--plot/--no-plot", help="Draw the loss by epoch in the terminal.")
    ] = True,
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """One job: its fields (for a fork, the job and epoch it went on from; its own forks), a
    small plot of its loss by epoch (a fork's from epoch 1, its parent's first), its error."""
    with Client(url, key) as client:
        job = client.job(client.resolve(job_id))
        if as_json:
            print_json(job)
            return
        # An even sample keeps the plot's cost flat however long the job ran.
        path = f"/v1/jobs/{job['id']}/epochs"
        query = {"fields": "loss,val_loss", "format": "columns", "points": PLOT_POINTS}
        columns = client.get(path, **query)["columns"]
        descendants = client.lineage(job["id"])["descendants"]
    console.print(job_table(job, descendants))
    print_losses(columns, plot)
    if job["error"]:
        console.print(f"error: {job['error']}", style="red", markup=False, soft_wrap=True)


def print_losses(columns: dict[str, list], plot: bool) -> None:
    epochs, losses = columns["epoch"], columns["loss"]
    if not epochs:
        console.print("no epochs stored yet")
        return
    console.print(
        f"loss {fmt_loss(losses[0])} after epoch {epochs[0]}, "
        f"{fmt_loss(losses[-1])} after epoch {epochs[-1]}",
        highlight=False,
    )
    drawn = loss_plot(columns, console.width) if plot else None
    if drawn is not None:
        console.print(drawn, soft_wrap=True)
