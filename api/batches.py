"""Queued batch runs: a base job body and a grid of dotted spec paths → one job per point.

`submit` validates every grid point — as a TrainSpec and against the data — before anything is
stored (an error names the point that caused it), stores the batch and its jobs in one
transaction of its own, then publishes them.

A grid may have 1,000 points, so nothing is done per point that the batch can do once: the
data is checked once per shape of network and loss, a point's spec shares the base's untouched
parts instead of deep-copying it, and the jobs and their tags are inserted as two executemany
statements rather than flushed as 1,000 ORM objects.
"""

from __future__ import annotations

import itertools
import json
import math
import types
import typing
import uuid
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from api import datasets, limits, submission, tuning
from api.errors import unprocessable
from api.queue import Queue
from api.schemas import BatchCreate, JobCreate
from backprop import data
from backprop.spec import TrainSpec
from models.base import utcnow
from models.tables import Batch, Job, JobTag
from settings import Settings
from tune import space


def submit(
    *,
    session: Session,
    queue: Queue,
    settings: Settings,
    owner: str,
    body: BatchCreate,
    idempotency_key: str | None = None,
) -> tuple[Batch, list[uuid.UUID], bool]:
    """Check every grid point, store the batch and its jobs (and a new data set), then publish
    them. Returns (batch, its job ids in grid order, created); a repeat of an Idempotency-Key
    is answered with the batch it created, and nothing new is stored or published."""
    # Digested as parsed, as a job submission is: the base as the job body it parses to.
    digest = submission.request_digest(body.model_dump(mode="json")) if idempotency_key else None
    job_ids: list[uuid.UUID] = []

    def store() -> Batch:
        batch, ids = _store(session, owner, body, settings, idempotency_key, digest)
        job_ids.extend(ids)  # known here, in grid order: no second transaction to read them
        return batch

    batch, created = submission.create_once(session, Batch, owner, idempotency_key, digest, store)
    if created:
        submission.publish(session, queue, job_ids)
    else:
        with session.begin():
            job_ids = _job_ids(session, batch)
    return batch, job_ids, created


_SPACE = TypeAdapter(space.Space)


def size(grid: dict[str, list[Any]]) -> int:
    """Points of the grid's cartesian product."""
    return math.prod(len(values) for values in grid.values())


def _store(
    session: Session,
    owner: str,
    body: BatchCreate,
    settings: Settings,
    key: str | None,
    digest: str | None,
) -> tuple[Batch, list[uuid.UUID]]:
    """Check every grid point against the spec and the data, then add the batch and its jobs
    (and a new data set); returns the batch and its job ids in grid order. No commit."""
    check_grid(body.grid, settings.max_grid_points, body.num_samples)
    # What the client set, without the defaults: a grid point may switch the optimizer's kind,
    # and the defaults of the base's kind (momentum: 0.9) would not fit another (adam).
    base = body.base.model_dump(mode="json", exclude_unset=True)
    scheduler, base = tuning.resolve(body, base)
    check_space(base, body)
    grid_points = batch_points(body.grid, body.space, body.num_samples, body.seed)
    specs = [point_spec(base, p) for p in grid_points]
    tuning.check_specs(scheduler, specs[:1] if _uniform(body) else specs)
    dataset, name, x, y = datasets.load(session, owner, body.base.dataset)
    check_points(specs, grid_points, x, y, settings)
    dataset = dataset or datasets.store(session, owner, name, x, y)
    batch = Batch(
        id=uuid.uuid4(), owner=owner, name=body.name, base=base, grid=body.grid,
        space=space.stored(body.space), num_samples=body.num_samples, seed=body.seed,
        scheduler=scheduler.model_dump(mode="json"), idempotency_key=key, request_sha256=digest,
    )  # fmt: skip
    session.add(batch)
    session.flush()  # the batch row (and a new data set) exist before jobs reference them
    rows = [
        _job_row(owner, body.base, spec, point, dataset.id, batch.id)
        | tuning.trial_columns(scheduler, i, spec.epochs)
        for i, (spec, point) in enumerate(zip(specs, grid_points, strict=True))
    ]
    return batch, _insert_jobs(session, body.base, rows)


def _uniform(body: BatchCreate) -> bool:
    """Whether every point has the base's validation split and loss (what check_specs reads)."""
    return not {"validation_split", "loss"} & (set(body.grid) | set(body.space))


def check_points(
    specs: list[TrainSpec], grid_points: list[dict[str, Any]], x, y, settings: Settings
) -> None:
    """422 for the first point over a limit or at odds with the data. The data check reads
    only what `_data_shape` keys, so it runs once per distinct key, not once per point."""
    checked: set[tuple] = set()
    for spec, point in zip(specs, grid_points, strict=True):
        limits.check(spec, x, settings, ["grid"])
        if (shape := _data_shape(spec)) not in checked:
            check_data(spec, point, x, y)
            checked.add(shape)


def _data_shape(spec: TrainSpec) -> tuple:
    """What backprop.data.prepare reads of a spec: the input and output widths, the loss and
    the dtype; two specs equal in these pass or fail it alike."""
    layers = spec.network.layers
    return layers[0], layers[-1], spec.loss, spec.dtype


def _insert_jobs(session: Session, base: JobCreate, rows: list[dict[str, Any]]) -> list[uuid.UUID]:
    """Insert the queued jobs and their tags, each as one executemany; the columns are those
    submission.add_job sets (the others take their defaults). Returns the ids in grid order."""
    session.execute(insert(Job.__table__), rows)
    tags = [{"job_id": r["id"], "key": k, "value": v} for r in rows for k, v in base.tags.items()]
    if tags:
        session.execute(insert(JobTag.__table__), tags)
    return [row["id"] for row in rows]


def _job_row(
    owner: str,
    base: JobCreate,
    spec: TrainSpec,
    point: dict[str, Any],
    dataset_id: uuid.UUID,
    batch_id: uuid.UUID,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "owner": owner,
        "name": _job_name(base.name, point),
        "tags": base.tags,
        "spec": spec.model_dump(mode="json"),
        "dataset_id": dataset_id,
        "batch_id": batch_id,
        "grid_point": point,
        "epochs_total": spec.epochs,
        "published_at": utcnow(),  # published once this commits, as submission.add_job has it
    }


def _job_ids(session: Session, batch: Batch) -> list[uuid.UUID]:
    """The batch's jobs in the order of its grid points, the same in the first answer and in
    a repeat's. A job is placed by its grid_point; jobs of equal points (a value listed twice)
    are interchangeable and keep (created_at, id) order; a job deleted since is left out."""
    position: dict[str, int] = {}
    every = batch_points(batch.grid, _SPACE.validate_python(batch.space), batch.num_samples,
                         batch.seed)  # fmt: skip
    for i, point in enumerate(every):
        position.setdefault(_canonical(point), i)
    rows = session.execute(
        select(Job.id, Job.grid_point)
        .where(Job.batch_id == batch.id)
        .order_by(Job.created_at, Job.id)
    ).all()
    rows.sort(key=lambda row: position.get(_canonical(row.grid_point), len(position)))
    return [row.id for row in rows]


def _canonical(point: dict | None) -> str:
    return json.dumps(point, sort_keys=True)


def _job_name(name: str, point: dict) -> str:
    label = ", ".join(f"{path}={value}" for path, value in point.items())
    return f"{name} [{label}]"[:200] if label else name


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


def check_grid(grid: dict[str, list[Any]], max_points: int, num_samples: int = 1) -> int:
    """The number of points (num_samples × the grid's); 422 for an unknown path or too many."""
    for path, values in grid.items():
        check_path(path, ["body", "grid", path])
        if not values:
            raise unprocessable(["body", "grid", path], "give at least one value")
    points = size(grid) * num_samples
    if points > max_points:
        what = "the grid has" if num_samples == 1 else f"{num_samples} samples × the grid make"
        raise unprocessable(
            ["body", "grid" if num_samples == 1 else "num_samples"],
            f"{what} {points} points, more than the limit of {max_points} "
            "(DELTAFLOW_MAX_GRID_POINTS)",
        )
    return points


def check_space(base: dict[str, Any], body: BatchCreate) -> None:
    """422 naming the path for a sampled path the spec lacks, one the grid lists too, or a
    distribution whose values the spec refuses (each choice, each end of a range)."""
    for path, dim in body.space.items():
        loc = ["body", "space", path]
        check_path(path, loc)
        if path in body.grid:
            raise unprocessable(loc, f"{path!r} is in the grid too; give it in one of them")
        for value in dim.extremes():
            point_spec(base, {path: value}, "space", f"space {path} = {value!r}")


def batch_points(
    grid: dict[str, list[Any]], sampled: space.Space, num_samples: int, seed: int
) -> list[dict[str, Any]]:
    """Every point of a batch, in job order: the grid's, expanded by the space's samples."""
    return space.expand(points(grid), sampled, num_samples, seed)


def check_path(path: str, loc: list[str]) -> None:
    """422 at `loc` unless `path` is a dotted path of the spec, suggesting the ones meant."""
    if path not in GRID_PATHS:
        near = sorted(p for p in GRID_PATHS if p.split(".")[-1] == path.split(".")[-1])
        hint = f"; did you mean {' or '.join(near)}?" if near else ""
        raise unprocessable(loc, f"{path!r} is not a field of a training spec{hint}")


def points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cartesian product, in the grid's key order: [{path: value, …}, …]."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


# Fields of a job body that no grid path reaches: the data set is resolved once for the batch,
# so it is never copied per point (a 1,000-point grid over inline data would copy it 1,000 times).
NOT_SPEC = frozenset({"name", "tags", "dataset"})


def point_spec(
    base: dict[str, Any], point: dict[str, Any], where: str = "grid", what: str = ""
) -> TrainSpec:
    """The base body's spec with the point's values set at their paths, validated; a 422 at
    body.`where` says what is wrong with it (`what` names the point). Only the objects on a path
    are copied; the rest is the base's own, which validation never alters."""
    what = what or f"grid point {point}"
    try:
        body = space.set_paths({k: v for k, v in base.items() if k not in NOT_SPEC}, point)
    except ValueError as exc:
        raise unprocessable(
            ["body", where, str(exc)], f"{str(exc)!r} crosses a non-object"
        ) from None
    try:
        return TrainSpec.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = str(first["msg"]).removeprefix("Value error, ")
        field = ".".join(str(p) for p in first["loc"]) or "the spec"
        raise unprocessable(["body", where], f"{what}: {field}: {msg}") from None


def check_data(spec: TrainSpec, point: dict[str, Any], x, y) -> None:
    try:
        data.prepare(spec, x, y)
    except ValueError as exc:
        raise unprocessable(["body", "grid"], f"grid point {point}: {exc}") from None
