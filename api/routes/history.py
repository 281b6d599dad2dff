"""/v1/jobs/{id}/…: the history of a job — epochs, snapshots, one parameter's trajectory."""

from __future__ import annotations

import io
import uuid
from typing import Annotated, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Path, Query, Response

from api import history, pagination
from api.deps import OwnerDep, SessionDep, get_owned
from api.errors import problems, unprocessable
from api.fields import MAX_EPOCH, CursorQuery, OwnQuery
from api.schemas import (
    EpochColumns,
    EpochRows,
    LayerOut,
    Page,
    SnapshotEpoch,
    SnapshotOut,
    TrajectoryOut,
)
from backprop.layout import Layout, parameter_name
from backprop.spec import TrainSpec
from models import history as stored
from models import lineage
from models.tables import Job

router = APIRouter(prefix="/v1/jobs", tags=["history"])

JobId = Annotated[uuid.UUID, Path(description="The job's id.")]
EpochArg = Annotated[
    str, Path(pattern=r"^(latest|[0-9]{1,10})$", description="An epoch, or `latest`.")
]


@router.get(
    "/{job_id}/epochs", response_model=EpochRows | EpochColumns, responses=problems(404, 422)
)
def list_epochs(
    job_id: JobId,
    session: SessionDep,
    owner: OwnerDep,
    start: Annotated[int, Query(ge=0, le=MAX_EPOCH, description="First epoch of the range.")] = 0,
    end: Annotated[
        int | None, Query(ge=0, le=MAX_EPOCH, description="Last epoch of the range.")
    ] = None,
    fields: Annotated[
        str | None, Query(max_length=200, description="Comma-separated; default all.")
    ] = None,
    format: Annotated[Literal["rows", "columns"], Query()] = "rows",
    points: Annotated[
        int | None, Query(ge=4, le=10_000, description="Thin the range to at most this many.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    cursor: CursorQuery = None,
    own: OwnQuery = False,
) -> Response:
    """Per-epoch metrics in epoch order: a range, chosen fields, rows or columns, and an even
    downsample that always keeps the first, last, minimum-loss and maximum-loss epochs."""
    job = get_owned(session, Job, job_id, owner)
    chosen = history.parse_fields(fields)
    n_layers = len(TrainSpec.model_validate(job.spec).network.layers) - 1
    rng = history.EpochRange(lineage.segments(session, job, own=own), n_layers, start, end)
    downsampled = next_cursor = None
    if points is not None:
        if cursor:
            raise unprocessable(["query", "cursor"], "a downsample is one page; drop the cursor")
        columns, total = history.downsample(session, rng, points, chosen)
        if total > len(columns["epoch"]):
            downsampled = {"points": len(columns["epoch"]), "of": total}
    else:
        after = pagination.decode(cursor, pagination.epoch) if cursor else 0
        columns, more = history.read_columns(session, rng, chosen, after=after, limit=limit)
        if more:
            next_cursor = pagination.encode(int(columns["epoch"][-1]))
    page = {"next_cursor": next_cursor, "downsampled": downsampled}
    if format == "columns":
        body = {"columns": columns, **page}
    else:
        body = {"items": _rows(columns), **page}
    return _json(body)


def _rows(columns: dict[str, np.ndarray]) -> list[dict]:
    names, lists = list(columns), [c.tolist() for c in columns.values()]
    return [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]


def _json(body: dict) -> Response:
    """orjson encodes numpy arrays directly (NaN, a missing value, as null): several times
    faster than the default encoder on 100,000-epoch histories."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


@router.get("/{job_id}/snapshots", response_model=Page[SnapshotEpoch], responses=problems(404, 422))
def list_snapshots(
    job_id: JobId,
    session: SessionDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    cursor: CursorQuery = None,
    own: OwnQuery = False,
):
    """The epochs that have a snapshot (0 is the initial network)."""
    job = get_owned(session, Job, job_id, owner)
    after = pagination.decode(cursor, pagination.epoch) if cursor else -1
    where = lineage.segments(session, job, own=own)
    epochs = stored.snapshot_epochs(session, where, after=after, limit=limit + 1)
    items = [{"epoch": e} for e in epochs[:limit]]
    next_cursor = pagination.encode(epochs[limit - 1]) if len(epochs) > limit else None
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/{job_id}/snapshots/{epoch}",
    response_model=SnapshotOut,
    responses={200: {"content": {"application/octet-stream": {}}}, **problems(404, 422)},
)
def read_snapshot(
    job_id: JobId,
    epoch: EpochArg,
    session: SessionDep,
    owner: OwnerDep,
    format: Annotated[Literal["json", "npz"], Query()] = "json",
    own: OwnQuery = False,
):
    """W^l and b^l at an epoch in the seed's convention (weights[k][j] = w^l_kj); or, with
    `format=npz`, a file numpy.load opens with allow_pickle=False, keys W1, b1, W2, b2, …"""
    job = get_owned(session, Job, job_id, owner)
    spec = TrainSpec.model_validate(job.spec)
    at, theta = history.snapshot(
        session, job, spec, None if epoch == "latest" else int(epoch), own=own
    )
    Ws, bs = Layout(spec.network.layers).split(theta)
    if format == "npz":
        arrays = {f"W{l}": W for l, W in enumerate(Ws, 1)} | {
            f"b{l}": b for l, b in enumerate(bs, 1)
        }
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        filename = f"job-{job_id}-epoch-{at}.npz"
        return Response(
            buffer.getvalue(),
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    layers = [
        LayerOut(layer=l, weights=W.tolist(), biases=b.tolist())
        for l, (W, b) in enumerate(zip(Ws, bs, strict=True), start=1)
    ]
    return SnapshotOut(epoch=at, layers=layers)


@router.get("/{job_id}/trajectory", response_model=TrajectoryOut, responses=problems(404, 422))
def read_trajectory(
    job_id: JobId,
    session: SessionDep,
    owner: OwnerDep,
    layer: Annotated[int, Query(description="l = 1..L")],
    param: Annotated[Literal["weight", "bias"], Query()],
    k: Annotated[int, Query(description="Neuron k of layer l (0-based).")],
    j: Annotated[int | None, Query(description="Neuron j of layer l-1 (weights only).")] = None,
    own: OwnQuery = False,
) -> Response:
    """The exact value of w^l_kj (or b^l_k) at every snapshot epoch."""
    job = get_owned(session, Job, job_id, owner)
    spec = TrainSpec.model_validate(job.spec)
    layout = Layout(spec.network.layers)
    index = history.parameter_index(layout, layer, param, k, j)
    where = lineage.segments(session, job, own=own)
    epochs, values = stored.trajectory(session, where, np.dtype(spec.dtype), index)
    name = parameter_name(layer, k, j if param == "weight" else None)
    body = {"name": name, "layer": layer, "param": param, "k": k, "j": j}
    return Response(
        orjson.dumps(body | {"epochs": epochs, "values": values}), media_type="application/json"
    )
