"""Queued batch runs: a base job body and a grid of dotted spec paths → one job per point.

Every grid point is validated — as a TrainSpec and against the data — before anything is
stored; an error names the point that caused it.
"""

from __future__ import annotations

import copy
import itertools
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from api.errors import unprocessable
from backprop import data
from backprop.spec import TrainSpec


def spec_paths(model: type[BaseModel] = TrainSpec, prefix: str = "") -> set[str]:
    """Every dotted path a grid may vary: the TrainSpec's fields, through nested models and
    across the variants of a union (so `optimizer.beta1` exists because Adam has it)."""
    paths = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        paths.add(path)
        for sub in _models_in(field.annotation):
            paths |= spec_paths(sub, f"{path}.")
    return paths


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


GRID_PATHS = frozenset(spec_paths())


def check_grid(grid: dict[str, list[Any]], max_points: int) -> int:
    """The number of grid points; 422 for an unknown path or too large a product."""
    for path, values in grid.items():
        if path not in GRID_PATHS:
            near = sorted(p for p in GRID_PATHS if p.split(".")[-1] == path.split(".")[-1])
            hint = f"; did you mean {' or '.join(near)}?" if near else ""
            raise unprocessable(
                ["body", "grid", path], f"{path!r} is not a field of a training spec{hint}"
            )
        if not values:
            raise unprocessable(["body", "grid", path], "give at least one value")
    size = 1
    for values in grid.values():
        size *= len(values)
    if size > max_points:
        raise unprocessable(
            ["body", "grid"],
            f"the grid has {size} points, more than the limit of {max_points} "
            "(DELTAFLOW_MAX_GRID_POINTS)",
        )
    return size


def points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cartesian product, in the grid's key order: [{path: value, …}, …]."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


# Fields of a job body that no grid path reaches: the data set is resolved once for the batch,
# so it is never copied per point (a 1,000-point grid over inline data would copy it 1,000 times).
NOT_SPEC = frozenset({"name", "tags", "dataset"})


def point_spec(base: dict[str, Any], point: dict[str, Any]) -> TrainSpec:
    """The base body's spec with the point's values set at their paths, validated."""
    body = copy.deepcopy({k: v for k, v in base.items() if k not in NOT_SPEC})
    for path, value in point.items():
        *parents, leaf = path.split(".")
        node = body
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise unprocessable(["body", "grid", path], f"{path!r} crosses a non-object")
        node[leaf] = value
    try:
        return TrainSpec.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the spec"
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise unprocessable(["body", "grid"], f"grid point {point}: {where}: {msg}") from None


def check_data(spec: TrainSpec, point: dict[str, Any], x, y) -> None:
    try:
        data.prepare(spec, x, y)
    except ValueError as exc:
        raise unprocessable(["body", "grid"], f"grid point {point}: {exc}") from None
