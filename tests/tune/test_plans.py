"""The schedulers' arithmetic (tune/): Hyperband's brackets as Ray Tune makes them, promotion
at a rung, the median rule, and PBT's exploit and explore."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter

from tune import pbt, plans
from tune.plans import Record
from tune.schedulers import Scheduler
from tune.space import Choice, LogUniform, RandInt

SCHEDULER = TypeAdapter(Scheduler)


def test_hyperband_brackets_match_ray_tunes():
    cfg = SCHEDULER.validate_python({"name": "hyperband", "min_epochs": 1})
    found = plans.brackets(cfg, 81)
    assert [n for _, n in found] == [81, 34, 15, 8, 5]  # ⌈5/(s+1)·3^s⌉, s = 4 … 0
    assert [r[:1] for r, _ in found] == [[1], [3], [9], [27], []]
    assert found[0][0] == [1, 3, 9, 27]
    assert [plans.bracket_of(cfg, t, 81) for t in (0, 80, 81, 114, 115, 142, 143)] == [
        0, 0, 1, 1, 2, 4, 0,
    ]  # fmt: skip


def test_sha_keeps_the_best_third_of_a_closed_rung_and_nothing_before():
    cfg = SCHEDULER.validate_python({"name": "sha", "reduction_factor": 3})
    records = [Record(t, v) for t, v in enumerate([0.5, 0.1, None, 0.3, 0.2, float("nan")])]
    waiting = {r.trial for r in records}
    assert plans.promotions(cfg, records, set(), waiting, closed=False) == ([], [])
    up, down = plans.promotions(cfg, records, set(), waiting, closed=True)
    assert up == [1, 4] and down == [3, 0, 2, 5]  # missing values rank last


def test_asha_promotes_the_top_fraction_at_once_and_tops_up_at_the_close():
    cfg = SCHEDULER.validate_python({"name": "asha", "reduction_factor": 3})
    records = [Record(0, 0.4), Record(1, 0.2), Record(2, 0.3)]
    assert plans.promotions(cfg, records, set(), {0, 1, 2}, closed=False) == ([1], [])
    records.append(Record(3, 0.1))
    # trial 1 went on already; 3 is the best now, in the top ⌊4/3⌋ = 1: it goes on too (a
    # promotion is never taken back, so ASHA may promote more than ⌈n/η⌉ in all)
    assert plans.promotions(cfg, records, {1}, {0, 2, 3}, closed=False) == ([3], [])
    assert plans.promotions(cfg, records, {1, 3}, {0, 2}, closed=True) == ([], [2, 0])
    # a rung that closes with fewer promoted than ⌈n/η⌉ is topped up, best first
    assert plans.promotions(cfg, records[:3], set(), {0, 1, 2}, closed=True) == ([1], [2, 0])


def test_max_mode_ranks_the_highest_first():
    cfg = SCHEDULER.validate_python({"name": "sha", "metric": "accuracy"})
    assert [r.trial for r in plans.ranked([Record(0, 0.6), Record(1, 0.9)], cfg.maximise)] == [1, 0]


def test_the_median_rule_compares_with_the_others_running_averages():
    cfg = SCHEDULER.validate_python({"name": "median", "min_samples": 3})
    assert plans.median_stops(0.5, [0.1, 0.2], cfg) == (False, None)  # too few to compare
    assert plans.median_stops(0.5, [0.1, 0.2, 0.9], cfg) == (True, 0.2)
    assert plans.median_stops(0.15, [0.1, 0.2, 0.9], cfg) == (False, 0.2)


@pytest.mark.parametrize(
    ("n", "fraction", "pairs"), [(4, 0.25, 1), (8, 0.25, 2), (3, 0.5, 1), (5, 0.5, 2), (1, 0.5, 0)]
)
def test_pbt_exploits_the_bottom_quantile_with_the_top(n, fraction, pairs):
    cfg = SCHEDULER.validate_python({"name": "pbt", "quantile_fraction": fraction})
    records = [Record(t, float(t)) for t in range(n)]  # trial 0 best (min)
    found = pbt.exploits(cfg, records, pbt.generator(1, 0))
    assert len(found) == pairs
    assert [loser for loser, _ in found] == list(range(n - 1, n - 1 - pairs, -1))
    assert all(source < pairs for _, source in found)


def test_explore_perturbs_within_the_range_or_resamples():
    cfg = SCHEDULER.validate_python({"name": "pbt", "resample_probability": 0.0})
    dims = {"lr": LogUniform(loguniform=[0.01, 1.0]), "bs": Choice(choice=[8, 16, 32]),
            "h": RandInt(randint=[2, 10])}  # fmt: skip
    rng = np.random.default_rng(0)
    for _ in range(50):
        new = pbt.explore(cfg, {"lr": 0.9, "bs": 16, "h": 9}, dims, rng)
        assert new["lr"] in (1.0, pytest.approx(0.72))  # 0.9 · 1.2 kept at the high end
        assert new["bs"] in (8, 32)  # a neighbour in the list
        assert 2 <= new["h"] <= 9 and new["h"] in (7, 9)
    always = SCHEDULER.validate_python({"name": "pbt", "resample_probability": 1.0})
    drawn = [pbt.explore(always, {"lr": 0.9}, dims, rng)["lr"] for _ in range(20)]
    assert len(set(drawn)) == 20 and all(0.01 <= v < 1.0 for v in drawn)
