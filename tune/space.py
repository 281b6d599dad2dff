"""Search spaces of a batch: sampled spec values next to the grid's listed ones.

    "space": {"optimizer.learning_rate": {"loguniform": [1e-4, 1e-1]},
              "batch_size": {"choice": [16, 32, 64]}, "seed": {"randint": [0, 1000]}},
    "num_samples": 20, "seed": 7

As in Ray Tune, each of `num_samples` samples expands the whole grid, every point drawing its
own sampled values: a batch has num_samples × (grid points) jobs. The draws come from one
`numpy.random.Generator` seeded with the batch's seed, point by point in that order and path by
path in the space's order, so the same body makes the same points; each job records its point
(grid and sampled values) as `grid_point`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator


class RequestModel(BaseModel):
    """Part of a request body: unknown fields refused, values strict (as api.fields has it)."""

    model_config = ConfigDict(extra="forbid", strict=True)


Number = Annotated[float, Field(allow_inf_nan=False)]
# [low, high]: a JSON array (a strict model reads no tuple from one).
Pair = Annotated[list[Number], Field(min_length=2, max_length=2)]
IntPair = Annotated[list[int], Field(min_length=2, max_length=2)]


class _Range(RequestModel):
    def bounds(self) -> tuple[float, float]:
        low, high = getattr(self, self.kind())
        return low, high

    @classmethod
    def kind(cls) -> str:
        return next(iter(cls.model_fields))

    def extremes(self) -> list[Any]:
        """The values the spec must accept: each end of the range."""
        return list(self.bounds())

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        low, high = self.bounds()
        if not low < high:
            raise ValueError(f"low must be below high, got [{low}, {high}]")
        return self


class Uniform(_Range):
    """A float drawn uniformly from [low, high)."""

    uniform: Pair

    def draw(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(*self.bounds()))


class LogUniform(_Range):
    """A float whose logarithm is uniform on [log low, log high): learning rates, L2."""

    loguniform: Pair

    @model_validator(mode="after")
    def _positive(self) -> LogUniform:
        if self.bounds()[0] <= 0:
            raise ValueError(f"loguniform needs low > 0, got {self.bounds()[0]}")
        return self

    def draw(self, rng: np.random.Generator) -> float:
        low, high = self.bounds()
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))


class RandInt(_Range):
    """An integer drawn uniformly from low, low + 1, …, high − 1 (high excluded, as in Ray)."""

    randint: IntPair

    def draw(self, rng: np.random.Generator) -> int:
        low, high = self.randint
        return int(rng.integers(low, high))

    def extremes(self) -> list[Any]:
        low, high = self.bounds()
        return [int(low), int(high) - 1]


class Choice(RequestModel):
    """One of the values, each as likely."""

    choice: list[Any] = Field(min_length=1, max_length=1000)

    def draw(self, rng: np.random.Generator) -> Any:
        return self.choice[int(rng.integers(len(self.choice)))]

    def extremes(self) -> list[Any]:
        return list(self.choice)


def _kind(value: Any) -> str | None:
    keys = value if isinstance(value, dict) else getattr(type(value), "model_fields", ())
    return next((k for k in ("choice", "uniform", "loguniform", "randint") if k in keys), None)


Dimension = Annotated[
    Annotated[Choice, Tag("choice")]
    | Annotated[Uniform, Tag("uniform")]
    | Annotated[LogUniform, Tag("loguniform")]
    | Annotated[RandInt, Tag("randint")],
    Discriminator(
        _kind,
        custom_error_type="space_kind",
        custom_error_message="give one of {choice: [...]}, {uniform: [low, high]}, "
        "{loguniform: [low, high]} or {randint: [low, high]}",
    ),
]
Space = dict[Annotated[str, Field(max_length=100)], Dimension]


def expand(
    grid_points: list[dict[str, Any]], space: Space, num_samples: int, seed: int
) -> list[dict[str, Any]]:
    """num_samples × the grid's points, each with its own draw of every sampled path."""
    rng = np.random.default_rng(seed)
    return [
        point | {path: dim.draw(rng) for path, dim in space.items()}
        for _ in range(num_samples)
        for point in grid_points
    ]


def stored(space: Space) -> dict[str, Any]:
    """The space as the batch row keeps it (and `Space` reads back)."""
    return {path: dim.model_dump(mode="json") for path, dim in space.items()}


def set_paths(body: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """`body` with each dotted path of `point` set to its value. Only the objects on a path are
    copied; the rest is the body's own. ValueError naming a path that crosses a non-object."""
    body = dict(body)
    for path, value in point.items():
        *parents, leaf = path.split(".")
        node = body
        for part in parents:
            child = node.get(part, {})
            if not isinstance(child, dict):
                raise ValueError(path)
            node[part] = node = dict(child)
        node[leaf] = value
    return body
