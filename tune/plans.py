"""The schedulers' arithmetic: rungs and brackets, ranking, and the decisions they imply.

Pure functions of what the database holds — the records of a rung, the trials' statuses — so
a decision made again from the same rows is the same decision (the worker and the reaper both
make them, under the batch's lock: worker/schedule.py).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from tune.schedulers import Asha, Hyperband, Median, Pbt, Sha, _Halving, _Scheduler


@dataclass(frozen=True)
class Record:
    """A trial's metric at a rung (or a generation): `trial` is its index in the batch."""

    trial: int
    value: float | None


def rungs(first: int, max_epochs: int, eta: int) -> list[int]:
    """Rung epochs first · η^i below max_epochs; a trial past the last trains to max_epochs."""
    out, r = [], first
    while r < max_epochs:
        out.append(r)
        r *= eta
    return out


def brackets(cfg: _Halving, max_epochs: int) -> list[tuple[list[int], int]]:
    """(rungs, trials) per bracket, the most aggressive first. sha and asha have one bracket,
    starting at min_epochs. Hyperband's bracket s = s_max … 0 starts at max_epochs / η^s with
    ⌈(s_max + 1) / (s + 1) · η^s⌉ trials, s_max = ⌊log_η(max_epochs / min_epochs)⌋."""
    eta = cfg.reduction_factor
    if not isinstance(cfg, Hyperband):
        return [(rungs(cfg.min_epochs, max_epochs, eta), 0)]
    s_max = 0
    while cfg.min_epochs * eta ** (s_max + 1) <= max_epochs:
        s_max += 1
    return [
        (rungs(max(max_epochs // eta**s, cfg.min_epochs), max_epochs, eta),
         math.ceil((s_max + 1) / (s + 1) * eta**s))
        for s in range(s_max, -1, -1)
    ]  # fmt: skip


def bracket_of(cfg: _Scheduler, trial: int, max_epochs: int) -> int:
    """The bracket trial `trial` belongs to: Hyperband fills its brackets in order, then starts
    over (a new band); the others have one."""
    if not isinstance(cfg, Hyperband):
        return 0
    sizes = [n for _, n in brackets(cfg, max_epochs)]
    place = trial % sum(sizes)
    for b, n in enumerate(sizes):
        if place < n:
            return b
        place -= n
    raise AssertionError("unreachable")


def milestones(cfg: _Scheduler, bracket: int, max_epochs: int) -> list[int]:
    """The epochs a trial pauses at, in order: its bracket's rungs, or PBT's generations."""
    if isinstance(cfg, Pbt):
        return list(range(cfg.perturbation_interval, max_epochs, cfg.perturbation_interval))
    if isinstance(cfg, _Halving):
        return brackets(cfg, max_epochs)[bracket][0]
    return []


def next_stop(cfg: _Scheduler, bracket: int, max_epochs: int, after: int) -> int | None:
    """The first pause after epoch `after`; None: train to the end."""
    return next((m for m in milestones(cfg, bracket, max_epochs) if m > after), None)


def ranked(records: Sequence[Record], maximise: bool) -> list[Record]:
    """Best first; a missing or non-finite value last; ties by trial index."""

    def key(r: Record) -> tuple[bool, float, int]:
        bad = r.value is None or not math.isfinite(r.value)
        value = 0.0 if bad or r.value is None else r.value
        return bad, -value if maximise else value, r.trial

    return sorted(records, key=key)


def keep(n: int, eta: int) -> int:
    """How many of a closed rung's n trials go on: ⌈n/η⌉ (81 → 27 → 9 → 3 → 1)."""
    return math.ceil(n / eta)


def promotions(
    cfg: _Halving, records: Sequence[Record], promoted: set[int], waiting: set[int],
    closed: bool,
) -> tuple[list[int], list[int]]:  # fmt: skip
    """(promote, stop) for a rung: `records` are every trial that reached it, `promoted` those
    already promoted from it, `waiting` those paused at it. sha decides only when the rung is
    `closed` (no trial can still reach it); asha promotes the waiting among the top ⌊n/η⌋ at
    once. A closed rung keeps ⌈n/η⌉ in all and stops the other waiting trials."""
    order = [r.trial for r in ranked(records, cfg.maximise)]
    eta = cfg.reduction_factor
    if closed:
        room = max(keep(len(order), eta) - len(promoted), 0)
        chosen = [t for t in order if t in waiting][:room]
        return chosen, [t for t in order if t in waiting and t not in chosen]
    if isinstance(cfg, Asha):
        top = order[: len(order) // eta]
        return [t for t in top if t in waiting], []
    assert isinstance(cfg, Sha | Hyperband)
    return [], []


def median_stops(best: float, means: Sequence[float], cfg: Median) -> tuple[bool, float | None]:
    """Whether a trial whose best value so far is `best` stops at epoch t: `means` are the
    running averages, over epochs 1..t, of the other trials that reached t. Returns (stop, the
    median), the median None while fewer than min_samples compare."""
    finite = sorted(m for m in means if math.isfinite(m))
    if len(finite) < cfg.min_samples:
        return False, None
    median = float(statistics.median(finite))
    worse = best < median if cfg.maximise else best > median
    return worse or not math.isfinite(best), median
