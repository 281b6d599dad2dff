"""Forks: a new job that continues another's exact state after a stored epoch (DESIGN §6a).

The API only checks and stores the fork's row — its spec is the parent's with the overrides
applied at the batch grid's paths, validated as a grid point is — and never copies history: the
fork's first worker rebuilds the parent's state after epoch k (worker/forks.py), and the fork's
history endpoints read the parent's epochs ≤ k where they are stored (models/lineage.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from api import batches, datasets, limits
from api.dataref import DatasetRef
from api.errors import unprocessable
from api.fields import Epoch, Name, RequestModel, Tags
from backprop import data
from backprop.fork import FIXED
from backprop.spec import TrainSpec
from models import history, lineage
from models.base import utcnow
from models.status import JobStatus
from models.tables import Job, JobTag
from settings import Settings

_DATASET = TypeAdapter(DatasetRef)


class ForkIn(RequestModel):
    """POST /v1/jobs/{id}/fork."""

    epoch: Epoch | None = Field(
        None, description="Continue from the state after this epoch; default: the last stored."
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Spec paths as in a batch grid (`optimizer.learning_rate`, `epochs`, …) to "
        "new values, taking effect from epoch k+1; `dataset` names other data of the same "
        "shapes. The network, dtype, loss and validation_split cannot change.",
        examples=[{"optimizer.learning_rate": 0.05, "epochs": 2000}],
    )
    name: Name | None = Field(None, description="Default: the parent's, with the fork epoch.")
    tags: Tags | None = Field(None, description="Default: the parent's.")


class LineageItem(BaseModel):
    id: uuid.UUID
    name: str
    status: JobStatus
    parent_id: uuid.UUID | None
    forked_at_epoch: int | None = Field(description="The parent's epoch it continues from.")
    epochs_done: int


class LineageOut(BaseModel):
    id: uuid.UUID
    ancestors: list[LineageItem] = Field(description="Its parent first, up to the root.")
    descendants: list[LineageItem] = Field(description="Its forks, theirs, …, breadth-first.")


def lineage_of(session: Session, job: Job) -> LineageOut:
    items = [LineageItem.model_validate(r, from_attributes=True) for r in lineage.ancestors(
        session, job.id)]  # fmt: skip
    below = lineage.descendants(session, job.id)
    return LineageOut(
        id=job.id,
        ancestors=items[1:],
        descendants=[LineageItem.model_validate(r, from_attributes=True) for r in below],
    )


def fork(
    session: Session, owner: str, parent: Job, body: ForkIn, settings: Settings,
    idempotency: tuple[str | None, str | None] = (None, None),
) -> Job:  # fmt: skip
    """The fork's job row and tags, added to the session (the caller commits and publishes);
    422 naming the field for an epoch without state or an override a fork may not make.
    `idempotency`: the request's Idempotency-Key and the digest it is kept with."""
    k = _epoch(parent, body.epoch)
    overrides = dict(body.overrides)
    ref = overrides.pop("dataset", None)
    for path, value in overrides.items():
        batches.check_path(path, ["body", "overrides", path])
        head = path.split(".")[0]
        if head in FIXED and _at(parent.spec, path) != value:  # before it fails to validate
            raise unprocessable(
                ["body", "overrides", path], f"a fork cannot change {head}: {FIXED[head]}"
            )
    spec = batches.point_spec(parent.spec, overrides, "overrides", "the overrides")
    if spec.epochs <= k:
        raise unprocessable(
            ["body", "overrides", "epochs"],
            f"epochs is {spec.epochs}, which the fork at epoch {k} has already reached: a "
            "fork's epochs count its parent's too; give overrides.epochs greater than "
            f"{k} to train on",
        )
    if ref is None:
        limits.check(spec, None, settings, ["overrides"])
        dataset_id = parent.dataset_id
    else:
        dataset_id = _dataset(session, owner, ref, spec, settings)
    latest, best = _losses(session, parent, k)
    job = Job(
        owner=owner, name=body.name or f"{parent.name} (fork at {k})"[:200],
        tags=parent.tags if body.tags is None else body.tags,
        spec=spec.model_dump(mode="json"), dataset_id=dataset_id, epochs_total=spec.epochs,
        epochs_done=k, latest_loss=latest, best_loss=best, parent_id=parent.id,
        forked_at_epoch=k, root_id=parent.root_id or parent.id, published_at=utcnow(),
        idempotency_key=idempotency[0], request_sha256=idempotency[1],
    )  # fmt: skip
    session.add(job)
    session.flush()
    session.add_all(JobTag(job_id=job.id, key=key, value=v) for key, v in job.tags.items())
    return job


def _at(spec: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a stored spec (None where it has none)."""
    node: Any = spec
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _epoch(parent: Job, epoch: int | None) -> int:
    """The fork epoch: given, or the parent's last stored one; 422 if it holds no state."""
    last = parent.epochs_done
    if epoch is None:
        return last
    if epoch > last:
        raise unprocessable(
            ["body", "epoch"],
            f"job {parent.id} has stored epochs 0..{last}, so epoch {epoch} has no state to "
            f"fork from; the nearest forkable epoch is {last}",
        )
    return epoch


def _dataset(session: Session, owner: str, ref: Any, spec: TrainSpec, settings: Settings):
    """The id of the data set an override names, once it fits the network."""
    loc = ["body", "overrides", "dataset"]
    try:
        parsed = _DATASET.validate_python({"id": ref} if isinstance(ref, str) else ref)
    except ValidationError as exc:
        raise unprocessable(loc, str(exc.errors()[0]["msg"])) from None
    row, name, x, y = datasets.load(session, owner, parsed)
    limits.check(spec, x, settings, ["overrides"])
    try:
        data.prepare(spec, x, y)
    except ValueError as exc:
        raise unprocessable(loc, f"the data set does not fit the parent's network: {exc}") from None
    return (row or datasets.store(session, owner, name, x, y)).id


def _losses(session: Session, parent: Job, k: int) -> tuple[float | None, float | None]:
    """(loss at epoch k, best watched loss of epochs 1..k): the fork's progress columns."""
    if k == 0:
        return None, None
    where = lineage.segments(session, parent)
    cols = history.epoch_columns(session, where, ["loss", "val_loss"], 0, last=k)
    if not len(cols["loss"]):
        return None, None
    watched = np.where(np.isnan(cols["val_loss"]), cols["loss"], cols["val_loss"])
    return float(cols["loss"][-1]), float(watched.min())
