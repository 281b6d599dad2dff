"""What the CLI prints as text and tables: jobs, batches, a job's history (epochs, one
parameter, a layer's W^l and b^l), API keys, each status in its colour."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from models.status import JobStatus

# Each status in its colour, listed in the order batch counts show them.
STATUS_STYLE = {
    JobStatus.SUCCEEDED: "green",
    JobStatus.RUNNING: "blue",
    JobStatus.QUEUED: "grey50",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "yellow",
    JobStatus.PAUSED: "magenta",
    JobStatus.STOPPED: "dark_orange",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def fmt_loss(value: float | None, digits: int = 6) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def fmt_time(value: str | None, seconds: bool = True) -> str:
    """Local time; the API sends UTC ISO 8601."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def job_loss(job: dict) -> float | None:
    return job["final_loss"] if job["final_loss"] is not None else job["latest_loss"]


ORDERS = {
    "-created_at": "newest first",
    "created_at": "oldest first",
    "final_loss": "lowest final loss first",
    "-final_loss": "highest final loss first",
}


def jobs_table(jobs: list[dict], width: int = 80, order: str = "-created_at") -> Table:
    """Only the name is cut to fit `width`: rich would otherwise squeeze every column."""
    table = Table(
        title=f"{len(jobs)} job(s), {ORDERS.get(order, order)}",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("name", no_wrap=True, overflow="ellipsis", max_width=max(width - 58, 8))
    table.add_column("status", no_wrap=True)
    table.add_column("progress", justify="right", no_wrap=True)
    table.add_column("loss", justify="right", no_wrap=True)
    table.add_column("created", no_wrap=True)
    for job in jobs:
        table.add_row(
            job["id"][:8],
            Text(job["name"]),
            status_text(job["status"]),
            f"{job['epochs_done']}/{job['epochs_total']}",
            fmt_loss(job_loss(job), digits=4),
            fmt_time(job["created_at"], seconds=False),
        )
    return table


def spec_summary(spec: dict) -> str:
    net, opt = spec["network"], spec["optimizer"]
    layers = "-".join(map(str, net["layers"]))
    return (
        f"{layers} {net['activation']}/{net['output_activation']}, {spec['loss']}, "
        f"{opt['name']} α={opt['learning_rate']}, batch {spec['batch_size'] or 'full'}, "
        f"seed {spec['seed']}"
    )


def job_table(job: dict, descendants: list[dict] | None = None) -> Table:
    """`deltaflow show`: one row per field a person asks about; for a fork the job it went on
    from, and the forks of this job among its lineage's `descendants`."""
    table = Table(show_header=False, title=f"job {job['id']}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    tags = ", ".join(f"{k}={v}" for k, v in job["tags"].items()) or "—"
    rows: list[tuple[str, str | Text]] = [
        ("name", job["name"]),
        ("status", status_text(job["status"])),
        ("progress", progress(job)),
        *lineage_rows(job, descendants or []),
        ("loss (latest)", fmt_loss(job["latest_loss"])),
        ("loss (best)", fmt_loss(job["best_loss"])),
        ("loss (final)", fmt_loss(job["final_loss"])),
        ("network", spec_summary(job["spec"])),
        ("tags", tags),
        ("attempt", str(job["attempt"])),
        ("dataset", job["dataset_id"]),
        ("created", fmt_time(job["created_at"])),
        ("started", fmt_time(job["started_at"])),
        ("finished", fmt_time(job["finished_at"])),
    ]
    if job["batch_id"]:
        rows.append(("batch", job["batch_id"]))
    if job["cancel_requested_at"]:
        rows.append(("cancel requested", fmt_time(job["cancel_requested_at"])))
    for key, value in rows:
        # Names and tags are the user's text, not rich markup.
        table.add_row(key, Text(value) if isinstance(value, str) else value)
    return table


def progress(job: dict) -> str:
    """epoch k/E; a fork's count includes its parent's epochs before the fork, so say which
    are its own."""
    done, total, at = job["epochs_done"], job["epochs_total"], job.get("forked_at_epoch")
    own = f" ({at + 1}–{done} its own)" if at is not None and done > at else ""
    return f"epoch {done}/{total}{own}"


def lineage_rows(job: dict, descendants: list[dict]) -> list[tuple[str, str]]:
    """A fork's parent and epoch (and the root of its tree, when that is another job); how
    many forks a job has, direct and in all (forks of forks too)."""
    rows = []
    parent = job.get("parent_id")
    if parent:
        rows.append(("forked from", f"{parent} at epoch {job['forked_at_epoch']}"))
        if job.get("root_id") not in (None, parent):
            rows.append(("root", job["root_id"]))
    children = sum(1 for d in descendants if d["parent_id"] == job["id"])
    if children:
        theirs = f", {len(descendants)} in all" if len(descendants) > children else ""
        rows.append(("forks", f"{children}{theirs} (deltaflow jobs --parent {job['id'][:8]})"))
    return rows


def layer_table(layer: dict, epoch: int) -> Table:
    """W^l and b^l side by side: row k holds w^l_kj for every j, then b^l_k."""
    l, weights = layer["layer"], layer["weights"]
    table = Table(title=f"W^{l} ({len(weights)}×{len(weights[0])}) and b^{l} at epoch {epoch}")
    table.add_column("k", justify="right", style="bold")
    for j in range(len(weights[0])):
        table.add_column(f"w^{l}_{{k,{j}}}", justify="right")
    table.add_column(f"b^{l}_{{k}}", justify="right", style="magenta")
    for k, (row, bias) in enumerate(zip(weights, layer["biases"], strict=True)):
        table.add_row(str(k), *(f"{w:+.4f}" for w in row), f"{bias:+.4f}")
    return table


def compact(title: str | None = None) -> Table:
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )


def fmt_value(value: Any) -> str:
    """A grid value as the user wrote it in JSON: 0.5, [2, 4, 1], "adam" → adam."""
    return value if isinstance(value, str) else json.dumps(value)


def grid_point(point: dict[str, Any] | None) -> str:
    return ", ".join(f"{path}={fmt_value(v)}" for path, v in (point or {}).items()) or "—"


def counts_text(counts: dict[str, int]) -> Text:
    """`2 succeeded · 1 running`, each status in its colour, in a fixed order."""
    text = Text()
    known = [s for s in STATUS_STYLE if counts.get(s)]
    for status in known + sorted(set(counts) - set(STATUS_STYLE)):
        if text:
            text.append(" · ")
        text.append(f"{counts[status]} {status}", style=STATUS_STYLE.get(status, ""))
    return text


def leaderboard_table(batch: dict) -> Table:
    """Every job of a batch, best loss first: rank, grid point, id, status and losses."""
    title = f"batch {batch['name']}: {batch['done']}/{batch['total']} done, best loss first"
    table = compact(title)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("grid point", overflow="fold")
    table.add_column("job", style="cyan", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("final loss", justify="right", no_wrap=True)
    table.add_column("best loss", justify="right", no_wrap=True)
    for rank, row in enumerate(batch["leaderboard"], 1):
        table.add_row(
            str(rank),
            Text(grid_point(row["grid_point"])),
            row["job_id"][:8],
            status_text(row["status"]),
            fmt_loss(row["final_loss"]),
            fmt_loss(row["best_loss"]),
        )
    return table


def batches_table(batches: list[dict]) -> Table:
    table = compact(f"{len(batches)} batch(es), newest first")
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("name", overflow="ellipsis", max_width=30)
    table.add_column("jobs", justify="right", no_wrap=True)
    table.add_column("grid", overflow="fold")
    table.add_column("created", no_wrap=True)
    for batch in batches:
        grid = batch["grid"]
        size = math.prod(len(values) for values in grid.values())
        axes = ", ".join(f"{path}×{len(values)}" for path, values in grid.items()) or "—"
        table.add_row(
            batch["id"][:8],
            Text(batch["name"]),
            str(size),
            Text(axes),
            fmt_time(batch["created_at"], seconds=False),
        )
    return table


def fmt_metric(value: Any) -> str:
    """A per-epoch value: a number, a list of per-layer norms, or — when not recorded."""
    if value is None:
        return "—"
    if isinstance(value, list):  # per layer; None where a layer has no such figure
        return " ".join("—" if v is None else f"{v:.2e}" for v in value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def epochs_table(
    columns: dict[str, list[Any]], *, hide_empty: bool = False, title: str | None = None
) -> Table:
    """One row per epoch, one column per field the server sent (hide_empty: without the fields
    this job never recorded, e.g. val_loss without a validation split). Per-layer norms may
    wrap at their spaces; numbers are never cut."""
    if hide_empty:
        columns = {k: v for k, v in columns.items() if any(x is not None for x in v)}
    table = compact(title)
    for name, values in columns.items():
        per_layer = any(isinstance(v, list) for v in values)
        table.add_column(name, justify="right", no_wrap=not per_layer, min_width=len(name))
    for row in zip(*columns.values(), strict=True):
        table.add_row(*(fmt_metric(v) for v in row))
    return table


def trajectory_table(name: str, rows: list[tuple[int, float]]) -> Table:
    table = compact()
    table.add_column("epoch", justify="right", no_wrap=True)
    table.add_column(name, justify="right", no_wrap=True)
    for epoch, value in rows:
        table.add_row(str(epoch), f"{value:+.6f}")
    return table


def keys_table(keys: list[dict]) -> Table:
    """API keys: never the key itself (the server has only its hash), but its first characters;
    revoked keys dimmed."""
    table = compact(f"{len(keys)} API key(s)")
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("name", overflow="ellipsis", max_width=30)
    table.add_column("owner", overflow="ellipsis", max_width=20)
    table.add_column("admin", no_wrap=True)
    table.add_column("prefix", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("revoked", no_wrap=True)
    for key in keys:
        revoked = key["revoked_at"] is not None
        table.add_row(
            str(key["id"])[:8],
            Text(key["name"]),
            Text(key["owner"]),
            Text("admin", style="bold") if key["admin"] else "",
            Text(f"{key['prefix']}…"),
            fmt_time(key["created_at"], seconds=False),
            Text(fmt_time(key["revoked_at"], seconds=False), style="red" if revoked else ""),
            style="dim" if revoked else None,
        )
    return table
