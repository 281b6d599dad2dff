"""/v1/jobs/{id}/…: the history of a job — epochs, snapshots, one parameter's trajectory."""

from __future__ import annotations

import io
import uuid
from typing import Annotated, Literal

import numpy as np
import orjson
import pyarrow as pa
from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy.orm import Session

from api import arrow, history, onnx_model, pagination
from api.deps import OwnerDep, SessionDep, get_owned
from api.errors import binary, problems, unprocessable
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
# `?format=npz` answered the .npz file before it had its own operation; a client still sending
# it gets a 422 that names the new one, not JSON where it expects a file.
MovedFormat = Annotated[str | None, Query(include_in_schema=False)]
BINARY = "application/octet-stream"
StartQuery = Annotated[int, Query(ge=0, le=MAX_EPOCH, description="First epoch of the range.")]
EndQuery = Annotated[int | None, Query(ge=0, le=MAX_EPOCH, description="Last epoch of the range.")]
FieldsQuery = Annotated[
    str | None, Query(max_length=200, description="Comma-separated; default all.")
]
PointsQuery = Annotated[
    int | None, Query(ge=4, le=10_000, description="Thin the range to at most this many.")
]
ARROW_COLUMNS = (
    "`epoch` (int64), then each field as float64, null where the JSON has null; a per-layer "
    "field as one column per layer, `grad_norm_weights_1` … `grad_norm_weights_L` (l of W^l)"
)
EPOCHS_200 = {
    "description": (
        "Rows or columns as JSON. With `Accept: application/vnd.apache.arrow.stream` the same "
        "operation answers an Apache Arrow IPC stream of the whole range instead (no pages: "
        f"`cursor` is refused, `limit` ignored; `points` honoured): {ARROW_COLUMNS}. A "
        "downsample says so in `X-Downsampled-Of` (the epochs of the range)."
    )
}


@router.get(
    "/{job_id}/epochs",
    response_model=EpochRows | EpochColumns,
    responses={200: EPOCHS_200, **problems(404, 422)},
)
def list_epochs(
    job_id: JobId,
    request: Request,
    session: SessionDep,
    owner: OwnerDep,
    start: StartQuery = 0,
    end: EndQuery = None,
    fields: FieldsQuery = None,
    format: Annotated[Literal["rows", "columns"], Query()] = "rows",
    points: PointsQuery = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    cursor: CursorQuery = None,
    own: OwnQuery = False,
) -> Response:
    """Per-epoch metrics in epoch order: a range, chosen fields, rows or columns, and an even
    downsample that always keeps the first, last, minimum-loss and maximum-loss epochs."""
    job = get_owned(session, Job, job_id, owner)
    chosen = history.parse_fields(fields)
    rng = history.EpochRange(
        lineage.segments(session, job, own=own), history.n_layers(job), start, end
    )
    if arrow.STREAM in request.headers.get("accept", ""):
        if cursor:
            raise unprocessable(["query", "cursor"], "an Arrow stream is the whole range in one "
                                "answer, never a page; drop the cursor")  # fmt: skip
        record, headers = _record(session, rng, chosen, points)
        return Response(arrow.stream_bytes(record), media_type=arrow.STREAM, headers=headers)
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


def _record(
    session: Session, rng: history.EpochRange, fields: list[str], points: int | None
) -> tuple[pa.RecordBatch, dict[str, str]]:
    """The whole range (or its downsample) as one record batch, and the headers saying how
    many epochs a downsample was taken from."""
    columns, total = history.whole(session, rng, fields, points)
    record = arrow.batch(columns, arrow.schema(fields, rng.n_layers), rng.n_layers)
    thinned = total > len(columns["epoch"])
    return record, {"X-Downsampled-Of": str(total)} if thinned else {}


@router.get(
    "/{job_id}/epochs.parquet",
    response_class=Response,
    responses={
        200: binary(f"A Parquet file, one row per epoch: {ARROW_COLUMNS}"),
        **problems(404, 422),
    },
)
def download_epochs_parquet(
    job_id: JobId,
    session: SessionDep,
    owner: OwnerDep,
    start: StartQuery = 0,
    end: EndQuery = None,
    fields: FieldsQuery = None,
    points: PointsQuery = None,
    own: OwnQuery = False,
) -> Response:
    """The epochs of GET …/epochs (a range, chosen fields, a downsample) as one Parquet file:
    `pandas.read_parquet` opens it."""
    job = get_owned(session, Job, job_id, owner)
    chosen = history.parse_fields(fields)
    rng = history.EpochRange(
        lineage.segments(session, job, own=own), history.n_layers(job), start, end
    )
    record, headers = _record(session, rng, chosen, points)
    headers["Content-Disposition"] = f'attachment; filename="job-{job_id}-epochs.parquet"'
    return Response(arrow.parquet_bytes(record), media_type=BINARY, headers=headers)


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


@router.get("/{job_id}/snapshots/{epoch}", response_model=SnapshotOut, responses=problems(404, 422))
def read_snapshot(
    job_id: JobId,
    epoch: EpochArg,
    session: SessionDep,
    owner: OwnerDep,
    own: OwnQuery = False,
    format: MovedFormat = None,
):
    """W^l and b^l at an epoch in the seed's convention (weights[k][j] = w^l_kj). The same
    arrays as a file: …/weights.npz; as a model: …/model.onnx."""
    if format is not None:
        msg = "is no longer read here: GET …/snapshots/{epoch}/weights.npz answers the .npz file"
        raise unprocessable(["query", "format"], msg)
    at, _, Ws, bs = _snapshot(session, job_id, epoch, owner, own)
    layers = [
        LayerOut(layer=l, weights=W.tolist(), biases=b.tolist())
        for l, (W, b) in enumerate(zip(Ws, bs, strict=True), start=1)
    ]
    return SnapshotOut(epoch=at, layers=layers)


def _file_operation(name: str, description: str):
    """The route of GET …/snapshots/{epoch}/`name`: one binary file, described for a 200."""
    path = f"/{{job_id}}/snapshots/{{epoch}}/{name}"
    responses = {200: binary(description), **problems(404, 422)}
    return router.get(path, response_class=Response, responses=responses)


@_file_operation(
    "weights.npz",
    "numpy.load opens it with allow_pickle=False; keys W1, b1, W2, b2, …, each in the job's dtype",
)
def read_snapshot_npz(
    job_id: JobId, epoch: EpochArg, session: SessionDep, owner: OwnerDep, own: OwnQuery = False
) -> Response:
    """The snapshot's W^l and b^l as a .npz file."""
    at, _, Ws, bs = _snapshot(session, job_id, epoch, owner, own)
    arrays = {f"W{l}": W for l, W in enumerate(Ws, 1)} | {f"b{l}": b for l, b in enumerate(bs, 1)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return _attachment(buffer.getvalue(), BINARY, f"job-{job_id}-epoch-{at}.npz", at)


@_file_operation(
    "model.onnx",
    f"An ONNX model (opset {onnx_model.OPSET}): input `{onnx_model.INPUT}` (N, n_0), output "
    f"`{onnx_model.OUTPUT}` (N, n_L), in the job's dtype; a Gemm and the activation per layer",
)
def read_snapshot_onnx(
    job_id: JobId, epoch: EpochArg, session: SessionDep, owner: OwnerDep, own: OwnQuery = False
) -> Response:
    """The network at the snapshot's epoch as an ONNX model: what POST …/predict computes."""
    at, spec, Ws, bs = _snapshot(session, job_id, epoch, owner, own)
    doc = f"deltaflow job {job_id} at epoch {at}"
    model = onnx_model.build(spec, Ws, bs, doc)
    return _attachment(model, BINARY, f"job-{job_id}-epoch-{at}.onnx", at)


def _snapshot(
    session: Session, job_id: uuid.UUID, epoch: str, owner: str, own: bool
) -> tuple[int, TrainSpec, list[np.ndarray], list[np.ndarray]]:
    """(the snapshot's epoch, the job's spec, W^1…W^L, b^1…b^L)."""
    job = get_owned(session, Job, job_id, owner)
    spec = TrainSpec.model_validate(job.spec)
    at, theta = history.snapshot(
        session, job, spec, None if epoch == "latest" else int(epoch), own=own
    )
    Ws, bs = Layout(spec.network.layers).split(theta)
    return at, spec, Ws, bs


def _attachment(content: bytes, media: str, filename: str, epoch: int) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"',
               "X-Snapshot-Epoch": str(epoch)}  # fmt: skip
    return Response(content, media_type=media, headers=headers)


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
