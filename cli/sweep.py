"""Batches: `deltaflow sweep` runs a grid of jobs and ranks them; `batches` and `batch` read them
back. Registered on the same typer app as cli.main's commands."""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Annotated

import typer

from cli.client import Client, CliError
from cli.common import DEFAULT_URL, AsJson, Key, Url, app, console, friendly, print_json
from cli.common import read_json_object as read_json
from cli.ladder import ladder_table, scheduled, scheduled_leaderboard
from cli.progress import follow_batch
from cli.tables import batches_table, counts_text, leaderboard_table
from models.status import JobStatus

UNSUCCESSFUL = (JobStatus.FAILED, JobStatus.CANCELLED)

BatchId = Annotated[str, typer.Argument(help="The batch's id (or its first characters).")]
GRID_EXAMPLE = '"grid": {"optimizer.learning_rate": [0.5, 0.1], "seed": [1, 2]}'


BATCH_FIELDS = ("name", "grid", "space", "num_samples", "seed", "scheduler")


def batch_body(source: str, name: str | None, scheduler: str | None = None) -> dict:
    """POST /v1/batches' body from a file holding {"name", "base", "grid"} (and "space",
    "num_samples", "seed", "scheduler"), or a job body with those at its top level (then the
    rest is the base). `scheduler` names one, replacing the file's."""
    spec = read_json(source, 'a JSON object with "base" (a job body) and "grid" or "space"')
    grid = spec.get("grid", {} if "space" in spec else None)
    if not isinstance(grid, dict):
        raise CliError(f'{source} has no "grid" object; add e.g. {GRID_EXAMPLE}')
    base = spec.get("base")
    if base is None:
        base = {k: v for k, v in spec.items() if k not in BATCH_FIELDS}
    if not isinstance(base, dict) or "dataset" not in base:
        raise CliError(f'{source}: the base job has no "dataset"; add e.g. {{"builtin": "xor"}}')
    fallback = "sweep" if source == "-" else Path(source).stem
    batch_name = name or spec.get("name") or base.get("name") or fallback
    # Jobs are named "<base name> [path=value, …]": without a base name, use the batch's.
    base = {"name": batch_name, **base}
    extra = {k: spec[k] for k in BATCH_FIELDS[2:] if k in spec}
    if scheduler is not None:
        extra["scheduler"] = {"name": scheduler}
    return {"name": batch_name, "base": base, "grid": grid} | extra


def fail_unless_all_succeeded(batch: dict) -> None:
    bad = [row for row in batch["leaderboard"] if row["status"] in UNSUCCESSFUL]
    if bad:
        counts = {s: n for s, n in batch["counts"].items() if s in UNSUCCESSFUL}
        what = " and ".join(f"{n} {s}" for s, n in counts.items())
        raise CliError(
            f"batch {batch['id']}: {what} of {batch['total']} jobs; "
            f"see e.g. deltaflow show {bad[0]['job_id'][:8]}"
        )


@app.command()
@friendly
def sweep(
    spec: Annotated[
        str,
        typer.Argument(
            help='JSON file: {"name", "base": <job body>, "grid": {path: [values]}}, or a job '
            'body with a "grid"; - reads stdin.'
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="The batch's name (overrides the file's).")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="fifo, sha, asha, hyperband, median or pbt with its defaults "
            '(overrides the file\'s; give settings there: "scheduler": {...}).'
        ),
    ] = None,
    no_watch: Annotated[
        bool, typer.Option("--no-watch", help="Submit and return; do not wait for the jobs.")
    ] = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Run one job per point of a grid or sample of a space (a batch), under a scheduler if
    given; follow it — the rungs filling — then rank the jobs by loss or the scheduler's metric.

    Exits 1 if any job failed or was cancelled."""
    body = batch_body(spec, name, scheduler)
    with Client(url, key) as client:
        created = client.request("POST", "/v1/batches", json=body)
        if no_watch and as_json:
            print_json(created)
            return
        if not as_json:
            console.print(f"batch {created['id']}: {created['size']} job(s)", highlight=False)
        if no_watch:
            return
        batch = follow_batch(client, created["id"], console, show=not as_json)
    show_batch(batch, as_json)
    fail_unless_all_succeeded(batch)


def show_batch(batch: dict, as_json: bool) -> None:
    if as_json:
        print_json(batch)
        return
    if scheduled(batch):
        console.print(ladder_table(batch))
        console.print(scheduled_leaderboard(batch))
    else:
        console.print(leaderboard_table(batch))
    console.print(counts_text(batch["counts"]))


@app.command()
@friendly
def batch(
    batch_id: BatchId, url: Url = DEFAULT_URL, key: Key = None, as_json: AsJson = False
) -> None:
    """One batch: its jobs ranked by best loss, and how many are in each state."""
    with Client(url, key) as client:
        found = client.batch(client.resolve(batch_id, "batch"))
    show_batch(found, as_json)


@app.command()
@friendly
def batches(
    limit: Annotated[int, typer.Option(min=1, help="How many batches to list.")] = 20,
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """The newest batches: name, number of jobs and the grid's axes."""
    with Client(url, key) as client:
        items = list(islice(client.pages("/v1/batches", limit=min(limit, 500)), limit))
    if as_json:
        print_json(items)
    else:
        console.print(batches_table(items))
