"""The pure parts of what the CLI draws: the watch bar's ETA and the loss plot's ticks."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from cli.plot import MAX_WIDTH, epoch_ticks, log_ticks, loss_plot
from cli.progress import eta

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def job(status: str, done: int, total: int, started_ago: float | None) -> dict:
    # The API sends naive UTC or offset ISO 8601; both must be read as UTC.
    started = None if started_ago is None else (NOW - timedelta(seconds=started_ago))
    return {
        "status": status,
        "epochs_done": done,
        "epochs_total": total,
        "started_at": started and started.replace(tzinfo=None).isoformat(),
    }


@pytest.mark.parametrize(
    ("status", "done", "total", "started_ago", "expected"),
    [
        ("running", 250, 1000, 100, "0:05:00"),  # a quarter in 100 s: 300 s to go
        ("running", 1, 10_000, 2, "5:33:18"),
        ("running", 0, 1000, 5, "-:--:--"),  # no pace yet
        ("queued", 0, 1000, None, "-:--:--"),
        ("succeeded", 1000, 1000, 100, "0:00:00"),
        ("cancelled", 10, 1000, 100, "0:00:00"),
    ],
)
def test_eta_from_the_pace_since_the_start(status, done, total, started_ago, expected) -> None:
    assert eta(job(status, done, total, started_ago), NOW) == expected


def test_log_ticks_are_decades_inside_the_range() -> None:
    positions, labels = log_ticks(-9.2, -0.4)
    assert labels == ["1e-9", "1e-7", "1e-5", "1e-3", "1e-1"]
    assert positions == [-9, -7, -5, -3, -1]


def test_log_ticks_of_a_narrow_range_use_1_2_5() -> None:
    positions, labels = log_ticks(math.log10(0.15), math.log10(0.6))
    assert labels == ["2e-1", "5e-1"]
    assert positions == pytest.approx([math.log10(0.2), math.log10(0.5)])
    assert log_ticks(math.log10(0.21), math.log10(0.22))[1] == ["0.21", "0.22"]


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [(1, 500, [1, 200, 400, 500]), (1, 30, [1, 10, 20, 30]), (7, 7, [7]), (0, 1, [0, 1])],
)
def test_epoch_ticks_are_round_and_keep_both_ends(first, last, expected) -> None:
    positions, labels = epoch_ticks(first, last)
    assert positions == expected
    assert labels == [str(p) for p in expected]


def test_the_plot_is_narrow_and_skips_what_it_cannot_draw() -> None:
    epochs = list(range(1, 301))
    loss = [0.3 * math.exp(-e / 50) + 1e-3 for e in epochs]
    console = Console(width=200, color_system=None, record=True)
    console.print(loss_plot({"epoch": epochs, "loss": loss, "val_loss": [None] * 300}, 200))
    lines = console.export_text().splitlines()
    assert lines[0] == "loss by epoch, log scale: ━━ loss"  # no val_loss: none recorded
    assert max(len(line) for line in lines) <= MAX_WIDTH
    # One epoch, or losses that a log scale cannot show, draw nothing.
    assert loss_plot({"epoch": [1], "loss": [0.2]}, 80) is None
    assert loss_plot({"epoch": [1, 2], "loss": [0.0, float("nan")]}, 80) is None
