"""Population based training's exploit and explore steps, as Ray Tune's PBT takes them.

Exploit: rank a generation; the bottom q trials, q = ⌈n · quantile_fraction⌉ (at most ⌊n/2⌋),
each clone a trial drawn from the top q. Explore: each hyperparameter of the clone's source is
resampled from its distribution with resample_probability, else perturbed: a number multiplied
by one of perturbation_factors (kept inside its range), a listed value moved to a neighbour in
its list. Draws come from a generator seeded by the batch's seed and the generation, so the same
generation makes the same clones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tune.plans import Record, ranked
from tune.schedulers import Pbt
from tune.space import Choice, Dimension, LogUniform, RandInt, Uniform


def generator(seed: int, generation: int) -> np.random.Generator:
    return np.random.default_rng([seed, generation])


def exploits(
    cfg: Pbt, records: Sequence[Record], rng: np.random.Generator
) -> list[tuple[int, int]]:
    """(loser, source) trial pairs for a generation, the worst loser first."""
    order = [r.trial for r in ranked(records, cfg.maximise)]
    q = math.ceil(len(order) * cfg.quantile_fraction)
    q = min(q, len(order) // 2)
    if q == 0:
        return []
    top, bottom = order[:q], order[-q:][::-1]
    return [(loser, top[int(rng.integers(q))]) for loser in bottom]


def explore(
    cfg: Pbt, point: dict[str, Any], dims: dict[str, Dimension], rng: np.random.Generator
) -> dict[str, Any]:
    """The source's point with every dimension in `dims` resampled or perturbed."""
    new = dict(point)
    for path, dim in dims.items():
        if path not in point:
            continue
        if rng.random() < cfg.resample_probability:
            new[path] = dim.draw(rng)
        else:
            new[path] = _perturb(cfg, dim, point[path], rng)
    return new


def _perturb(cfg: Pbt, dim: Dimension, value: Any, rng: np.random.Generator) -> Any:
    if isinstance(dim, Choice):
        i = next((j for j, v in enumerate(dim.choice) if v == value), 0)
        i = min(max(i + (1 if rng.random() < 0.5 else -1), 0), len(dim.choice) - 1)
        return dim.choice[i]
    factor = cfg.perturbation_factors[int(rng.integers(len(cfg.perturbation_factors)))]
    low, high = dim.bounds()
    if isinstance(dim, RandInt):
        return int(min(max(round(value * factor), low), high - 1))
    assert isinstance(dim, Uniform | LogUniform)
    return float(min(max(value * factor, low), high))
