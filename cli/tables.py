"""Tables for batches (leaderboard, list) and for a job's history (epochs, one parameter)."""

from __future__ import annotations

import json
import math
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from cli.render import STATUS_STYLE, fmt_loss, fmt_time, status_text

STATUS_ORDER = ("succeeded", "running", "queued", "failed", "cancelled")


def _compact(title: str | None = None) -> Table:
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
    known = [s for s in STATUS_ORDER if counts.get(s)]
    for status in known + sorted(set(counts) - set(STATUS_ORDER)):
        if text:
            text.append(" · ")
        text.append(f"{counts[status]} {status}", style=STATUS_STYLE.get(status, ""))
    return text


def leaderboard_table(batch: dict) -> Table:
    """Every job of a batch, best loss first: rank, grid point, id, status and losses."""
    title = f"batch {batch['name']}: {batch['done']}/{batch['total']} done, best loss first"
    table = _compact(title)
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
    table = _compact(f"{len(batches)} batch(es), newest first")
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
    if isinstance(value, list):
        return " ".join(f"{v:.2e}" for v in value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def epochs_table(columns: dict[str, list[Any]], *, hide_empty: bool = False) -> Table:
    """One row per epoch, one column per field the server sent (hide_empty: without the fields
    this job never recorded, e.g. val_loss without a validation split). Per-layer norms may
    wrap at their spaces; numbers are never cut."""
    if hide_empty:
        columns = {k: v for k, v in columns.items() if any(x is not None for x in v)}
    table = _compact()
    for name, values in columns.items():
        per_layer = any(isinstance(v, list) for v in values)
        table.add_column(name, justify="right", no_wrap=not per_layer, min_width=len(name))
    for row in zip(*columns.values(), strict=True):
        table.add_row(*(fmt_metric(v) for v in row))
    return table


def trajectory_table(name: str, rows: list[tuple[int, float]]) -> Table:
    table = _compact()
    table.add_column("epoch", justify="right", no_wrap=True)
    table.add_column(name, justify="right", no_wrap=True)
    for epoch, value in rows:
        table.add_row(str(epoch), f"{value:+.6f}")
    return table


def keys_table(keys: list[dict]) -> Table:
    """API keys: never the key itself (the server has only its hash), but its first characters;
    revoked keys dimmed."""
    table = _compact(f"{len(keys)} API key(s)")
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
