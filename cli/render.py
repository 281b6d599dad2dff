"""Rich tables, a sparkline and the seed's notation for what the CLI prints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypeVar

from rich import box
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {
    "queued": "grey50",
    "running": "blue",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
}
BLOCKS = "▁▂▃▄▅▆▇█"
T = TypeVar("T")


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


def job_table(job: dict) -> Table:
    """`deltaflow show`: one row per field a person asks about."""
    table = Table(show_header=False, title=f"job {job['id']}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    tags = ", ".join(f"{k}={v}" for k, v in job["tags"].items()) or "—"
    rows: list[tuple[str, str | Text]] = [
        ("name", job["name"]),
        ("status", status_text(job["status"])),
        ("progress", f"epoch {job['epochs_done']}/{job['epochs_total']}"),
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


def sparkline(values: list[float], width: int = 60, *, linear: bool = False) -> str:
    """Unicode sparkline, log scale (losses) or linear (parameters, which may be negative);
    each character is the mean over its bucket of epochs (of log10 on the log scale), so a
    curve of any length fits `width` characters."""
    if linear:
        points = [v for v in values if math.isfinite(v)]
    else:
        points = [math.log10(v) for v in values if v > 0 and math.isfinite(v)]
    if not points:
        return ""
    n = min(width, len(points))
    means = []
    for i in range(n):
        bucket = points[i * len(points) // n : (i + 1) * len(points) // n]
        means.append(sum(bucket) / len(bucket))
    low, high = min(means), max(means)
    span = (high - low) or 1.0
    return "".join(BLOCKS[round((m - low) / span * (len(BLOCKS) - 1))] for m in means)


def pick_epochs(epochs: Sequence[T], count: int = 8) -> list[T]:
    """About `count` rows evenly spread over the curve, always the first and the last."""
    if len(epochs) <= count:
        return list(epochs)
    step = (len(epochs) - 1) / (count - 1)
    return [epochs[round(i * step)] for i in range(count)]


def epochs_table(epochs: list[dict], title: str) -> Table:
    table = Table(title=title)
    for column in ("epoch", "loss C", "‖∂C/∂W¹‖", "‖∂C/∂b¹‖", "ms"):
        table.add_column(column, justify="right")
    for row in pick_epochs(epochs):
        table.add_row(
            str(row["epoch"]),
            f"{row['loss']:.6f}",
            f"{row['grad_norm_weights'][0]:.2e}",
            f"{row['grad_norm_biases'][0]:.2e}",
            f"{row['duration_ms']:.3f}",
        )
    return table


def layer_table(layer: dict, epoch: int) -> Table:
    """W^l and b^l side by side: row k holds w^l_kj for every j, then b^l_k."""
    l, weights = layer["layer"], layer["weights"]
    table = Table(title=f"W^{l} ({len(weights)}×{len(weights[0])}) and b^{l} at epoch {epoch}")
    table.add_column("k", justify="right", style="bold")
    for j in range(len(weights[0])):
        table.add_column(f"w^{l}_k{j}", justify="right")
    table.add_column(f"b^{l}_k", justify="right", style="magenta")
    for k, (row, bias) in enumerate(zip(weights, layer["biases"], strict=True)):
        table.add_row(str(k), *(f"{w:+.4f}" for w in row), f"{bias:+.4f}")
    return table


def movement(name: str, first: float, last: float, epochs: tuple[int, int]) -> str:
    return (
        f"{name}: {first:+.4f} (epoch {epochs[0]}) → {last:+.4f} (epoch {epochs[1]}), "
        f"moved {last - first:+.4f}"
    )
