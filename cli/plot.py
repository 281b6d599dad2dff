"""Drawing in a terminal: a small plot of a job's loss by epoch (plotext), for `deltaflow
show`; sparklines; a few epochs picked evenly from a curve; how far a parameter moved.

The loss is drawn as log10 on a linear axis with our own tick labels: losses span decades, and
plotext's log axis labels its ticks with long fixed-point numbers (0.00000013).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import plotext
from rich.text import Text

MAX_WIDTH = 72
HEIGHT = 12
# 256-colour codes of the loss and val_loss lines; the caption's keys use the same ones.
SERIES_COLORS = (12, 10)  # bright blue, bright green
BLOCKS = "▁▂▃▄▅▆▇█"
T = TypeVar("T")


def loss_plot(columns: dict[str, list], width: int) -> Text | None:
    """The plot of `loss` (and `val_loss` when recorded) against `epoch`, at most MAX_WIDTH
    columns wide, with a caption naming the lines; None with fewer than two plottable points."""
    series = _series(columns)
    if not series:
        return None
    figure = plotext.figure
    figure.clear()
    figure.theme("simple")  # no background colour: it reads on dark and light terminals
    figure.plot_size(min(width, MAX_WIDTH), HEIGHT)
    for (epochs, logs), color in zip(series.values(), SERIES_COLORS, strict=False):
        signal = figure.signal(epochs, logs, marker=plotext.marker("braille", color))
        signal.lines()
        figure.draw(signal)
    lows, highs = zip(*((min(v), max(v)) for _, v in series.values()), strict=True)
    positions, labels = log_ticks(min(lows), max(highs))
    figure.ruler("y").ticks(positions, labels)
    first = min(e[0] for e, _ in series.values())
    last = max(e[-1] for e, _ in series.values())
    figure.ruler("x").ticks(*epoch_ticks(first, last))
    plot = Text.from_ansi(figure.build().string())
    return Text("\n").join([_caption(list(series)), plot])


def _series(columns: dict[str, list]) -> dict[str, tuple[list[int], list[float]]]:
    """{name: (epochs, log10 values)} for the fields with at least two positive finite values."""
    found = {}
    for name in ("loss", "val_loss"):
        points = [
            (e, math.log10(v))
            for e, v in zip(columns["epoch"], columns.get(name) or [], strict=False)
            if v is not None and v > 0 and math.isfinite(v)
        ]
        if len(points) >= 2:
            epochs, logs = zip(*points, strict=True)
            found[name] = (list(epochs), list(logs))
    return found


def log_ticks(low: float, high: float, most: int = 5) -> tuple[list[float], list[str]]:
    """Tick positions (log10 units) and labels (1e-3, 2e-3, 5e-3, …) inside [low, high]:
    every decade, thinned to at most `most`; 1-2-5 steps when the range spans under two."""
    decades = range(math.floor(low), math.ceil(high) + 1)
    mantissas = (1, 2, 5) if high - low < 2 else (1,)
    ticks = [
        (k + math.log10(m), f"{m}e{k}")
        for k in decades
        for m in mantissas
        if low <= k + math.log10(m) <= high
    ]
    if len(ticks) > most:
        ticks = ticks[:: math.ceil(len(ticks) / most)]
    if not ticks:  # a range inside one 1-2-5 step: label its two ends
        ticks = [(low, f"{10**low:.2g}"), (high, f"{10**high:.2g}")]
    positions, labels = zip(*ticks, strict=True)
    return list(positions), list(labels)


def epoch_ticks(first: int, last: int, most: int = 5) -> tuple[list[int], list[str]]:
    """The first and last epoch, and round ones (1, 2 or 5 × 10^k apart) between them that
    keep clear of both ends."""
    span = last - first
    if span < 1:
        return [first], [str(first)]
    raw = span / (most - 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    inner = range(math.ceil(first / step) * step, last + 1, step)
    clear = [p for p in inner if min(p - first, last - p) >= span / 8]
    positions = [first, *clear, last]
    return positions, [str(p) for p in positions]


def _caption(names: list[str]) -> Text:
    caption = Text("loss by epoch, log scale: ")
    for i, (name, color) in enumerate(zip(names, SERIES_COLORS, strict=False)):
        if i:
            caption.append("  ")
        caption.append("━━ ", style=f"color({color})")
        caption.append(name)
    return caption


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


def movement(name: str, first: float, last: float, epochs: tuple[int, int]) -> str:
    return (
        f"{name}: {first:+.4f} (epoch {epochs[0]}) → {last:+.4f} (epoch {epochs[1]}), "
        f"moved {last - first:+.4f}"
    )
