"""A scheduled batch in the terminal: its rung ladder, and a line of it for the progress bar."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from cli.tables import compact, fmt_loss, grid_point, status_text


def scheduled(batch: dict) -> bool:
    return batch.get("scheduler", {}).get("name", "fifo") != "fifo"


def rungs_text(batch: dict) -> str:
    """ "rungs 1: 9 reached ↑3 · 3: 2 reached …" — how the rungs fill, for the progress bar."""
    parts = [
        f"{r['epoch']}: {r['reached']}↑{r['promoted']}"
        + (f" ⏸{r['paused']}" if r["paused"] else "")
        for r in batch.get("rungs", [])
    ]
    return "rungs " + " · ".join(parts) if parts else ""


def ladder_table(batch: dict) -> Table:
    """Per rung (per bracket): its epoch and where its trials are."""
    cfg = batch["scheduler"]
    table = compact(f"{cfg['name']} on {cfg.get('metric', 'loss')}: "
                    f"{batch['epochs_trained']} epochs trained")  # fmt: skip
    for name in ("bracket", "rung", "epoch", "reached", "heading", "paused", "promoted",
                 "stopped"):  # fmt: skip
        table.add_column(name, justify="right", no_wrap=True)
    for r in batch["rungs"]:
        table.add_row(*(str(r[k]) for k in ("bracket", "rung", "epoch", "reached", "heading",
                                             "paused", "promoted", "stopped")))  # fmt: skip
    return table


def scheduled_leaderboard(batch: dict) -> Table:
    """Every trial, best first by the scheduler's metric at its last rung (or its end)."""
    cfg = batch["scheduler"]
    metric = cfg.get("metric", "loss")
    table = compact(f"batch {batch['name']}: {batch['done']}/{batch['total']} done, "
                    f"best {metric} first")  # fmt: skip
    for name in ("#", "trial", "point", "job", "status", "epoch", metric):
        table.add_column(name, justify="right" if name in ("#", "trial", "epoch", metric)
                         else "left", overflow="fold")  # fmt: skip
    for rank, row in enumerate(batch["leaderboard"], 1):
        table.add_row(str(rank), str(row.get("trial", "")), Text(grid_point(row["grid_point"])),
                      row["job_id"][:8], status_text(row["status"]),
                      str(row["epoch"] or ""), fmt_loss(row["value"]))  # fmt: skip
    return table
