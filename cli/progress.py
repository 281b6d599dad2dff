"""Following a job (GET /v1/jobs/{id}) or a batch (GET /v1/batches/{id}) until it ends, with a
live progress bar fed by polling."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from cli.client import Client, CliError
from cli.ladder import rungs_text
from cli.tables import STATUS_STYLE, counts_text, fmt_loss
from models.status import TERMINAL, JobStatus

POLL_SECONDS = 0.2


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("epoch {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[status]}"),
        TextColumn("ETA [cyan]{task.fields[eta]}"),
        console=console,
    )


def _fields(job: dict) -> dict:
    style = STATUS_STYLE.get(job["status"], "")
    return {
        "completed": job["epochs_done"],
        "total": job["epochs_total"],
        "loss": fmt_loss(job["latest_loss"]),
        "status": f"[{style}]{job['status']}[/]",
        "eta": eta(job, datetime.now(UTC)),
    }


def eta(job: dict, now: datetime) -> str:
    """Time left at the job's average pace since it started, from the server's own clock
    readings, so a watch that begins mid-run shows an ETA at once (rich's estimate would need
    several polls, and the worker reports progress only once per flush). A fork's epochs_done
    counts its parent's epochs before the fork, which took none of its time."""
    if job["status"] in TERMINAL:
        return "0:00:00"
    done, total, started = job["epochs_done"], job["epochs_total"], job["started_at"]
    trained = done - (job.get("forked_at_epoch") or 0)
    if not started or trained <= 0:
        return "-:--:--"
    moment = datetime.fromisoformat(started)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elapsed = (now - moment).total_seconds()
    if elapsed <= 0:
        return "-:--:--"
    left = round((total - done) * elapsed / trained)
    return f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"


def follow(client: Client, job_id: str, console: Console, *, show: bool = True) -> dict:
    """Poll the job every POLL_SECONDS until it is succeeded, failed or cancelled; returns it.
    With show=False nothing is drawn, so --json output stays machine-readable."""
    job = client.job(job_id)
    if not show:
        while job["status"] not in TERMINAL:
            time.sleep(POLL_SECONDS)
            job = client.job(job_id)
        return job
    with _bar(console) as bar:
        task = bar.add_task(escape(job["name"]), **_fields(job))
        while job["status"] not in TERMINAL:
            time.sleep(POLL_SECONDS)
            job = client.job(job_id)
            bar.update(task, **_fields(job))
    return job


def finish(job: dict, console: Console, *, quiet: bool = False) -> None:
    """One closing line for a job that ended; CliError (exit 1) when it did not succeed."""
    where = f"epoch {job['epochs_done']}/{job['epochs_total']}"
    if job["status"] == JobStatus.FAILED:
        raise CliError(f"job {job['id']} failed at {where}: {job['error']}")
    if job["status"] == JobStatus.CANCELLED:
        raise CliError(f"job {job['id']} was cancelled at {where}")
    if not quiet:
        console.print(
            f"job {job['id']} [green]succeeded[/] at {where}, "
            f"final loss {fmt_loss(job['final_loss'])}"
        )


def ended_cancelled(job: dict, console: Console, *, quiet: bool = False) -> None:
    """The closing line of `cancel --wait`; CliError (exit 1) when the job ended otherwise —
    it finished or failed before its worker's next flush saw the request."""
    where = f"epoch {job['epochs_done']}/{job['epochs_total']}"
    if job["status"] != JobStatus.CANCELLED:
        error = f": {job['error']}" if job["error"] else ""
        raise CliError(f"job {job['id']} {job['status']} at {where} before it could stop{error}")
    if not quiet:
        console.print(f"job {job['id']} [yellow]cancelled[/] at {where}")


BATCH_POLL_SECONDS = 0.5


def _batch_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} jobs"),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
    )


def follow_batch(client: Client, batch_id: str, console: Console, *, show: bool = True) -> dict:
    """Poll the batch every BATCH_POLL_SECONDS until every job has ended; returns it. One bar
    for the whole batch: jobs done of total, and how many are in each state."""
    batch = client.batch(batch_id)
    if not show:
        while batch["done"] < batch["total"]:
            time.sleep(BATCH_POLL_SECONDS)
            batch = client.batch(batch_id)
        return batch
    with _batch_bar(console) as bar:
        fields = {"completed": batch["done"], "total": batch["total"]}
        task = bar.add_task(escape(batch["name"]), counts=_counts(batch), **fields)
        while batch["done"] < batch["total"]:
            time.sleep(BATCH_POLL_SECONDS)
            batch = client.batch(batch_id)
            bar.update(task, completed=batch["done"], counts=_counts(batch))
    return batch


def _counts(batch: dict) -> str:
    rungs = rungs_text(batch)
    return counts_text(batch["counts"]).markup + (f" · {rungs}" if rungs else "")
