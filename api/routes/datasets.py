"""/v1/datasets: upload a data set (JSON; CSV, .npz or Parquet at /v1/datasets/csv, /npz,
/parquet), list and read the caller's data sets. Each upload format is its own operation, with
its own documented body and parameters, so a generated client offers each what it reads."""

from __future__ import annotations

import json
import math
import uuid
from typing import IO, Annotated

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import datasets, limits, pagination, uploads
from api.deps import OwnerDep, SessionDep, SettingsDep, get_owned
from api.errors import problems, unprocessable
from api.fields import Column, CursorQuery, Name, PageLimit
from api.schemas import DatasetCreate, DatasetOut, Page
from models.datasets import Content
from models.tables import Dataset
from settings import Settings

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

JSON, CSV = "application/json", "text/csv"
NPZ, PARQUET = "application/octet-stream", "application/vnd.apache.parquet"
CSV_PATH = "POST /v1/datasets/csv"
OPERATIONS = {
    JSON: "POST /v1/datasets",
    CSV: CSV_PATH,
    NPZ: "POST /v1/datasets/npz",
    PARQUET: "POST /v1/datasets/parquet",
}
BINARY_PATHS = ("/v1/datasets/npz", "/v1/datasets/parquet")  # DELTAFLOW_MAX_UPLOAD_BYTES

DatasetIdPath = Annotated[uuid.UUID, Path(description="The data set's id.")]
NameQuery = Annotated[Name, Query(description="The data set's name.")]
Targets = Annotated[
    list[Column],
    Query(min_length=1, max_length=100,
          description="The columns that form y, in order; repeat for several."),
]  # fmt: skip

CSV_EXAMPLE = "sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,0\n"
JSON_BODY = {"required": True, "content": {JSON: {"schema": DatasetCreate.model_json_schema()}}}
CSV_BODY = {
    "required": True,
    "content": {
        CSV: {
            "schema": {
                "type": "string",
                "format": "binary",  # generators (openapi-python-client) then send a file
                "description": "A header line, then one sample per line; every value a finite "
                "number. The `target` columns form y, every other column is a feature of x.",
            },
            "example": CSV_EXAMPLE,
        },
    },
}


def _file_body(media: str, description: str) -> dict:
    schema = {"type": "string", "format": "binary", "contentMediaType": media,
              "description": description}  # fmt: skip
    return {"required": True, "content": {media: {"schema": schema}}}


NPZ_BODY = _file_body(
    NPZ,
    "An .npz file (numpy.savez or savez_compressed) holding `x`, 2-D (samples × features), "
    "and `y`, 1-D labels or 2-D targets with one row per sample; integer or floating-point "
    "dtypes, every value finite. Never unpickled.",
)
PARQUET_BODY = _file_body(
    PARQUET,
    "A Parquet file of integer or floating-point columns, no missing values: the `target` "
    "columns form y, every other column is a feature of x.",
)
UPLOADED = {
    200: {"model": DatasetOut, "description": "The same content was already stored."},
    **problems(413, 415, 422),
}


def _body(media: str, elsewhere: dict[str, str]):
    """A dependency reading the raw body of an upload in `media` (the handler parses it, for
    its own sentences); `elsewhere` names the operation that reads each other media type.
    The body's size is bounded by limits.BodyLimit as it streams in."""

    async def read(request: Request) -> bytes:
        uploads.require_media(request, media, elsewhere)
        return await request.body()

    return read


JsonBody = Annotated[bytes, Depends(_body(JSON, OPERATIONS))]
CsvBody = Annotated[bytes, Depends(_body(CSV, OPERATIONS))]
NpzBody = Annotated[IO[bytes], Depends(uploads.spooled(NPZ, OPERATIONS))]
ParquetBody = Annotated[IO[bytes], Depends(uploads.spooled(PARQUET, OPERATIONS))]


@router.post(
    "", status_code=201, response_model=DatasetOut, openapi_extra={"requestBody": JSON_BODY},
    responses=UPLOADED,
)  # fmt: skip
def upload(
    raw: JsonBody, request: Request, response: Response, session: SessionDep, owner: OwnerDep,
    settings: SettingsDep,
) -> Dataset:  # fmt: skip
    """Store a data set sent as JSON `{name, x, y}`. 201 with Location when new; 200 with the
    stored data set when its content is already there."""
    for param in ("name", "target"):
        if param in request.query_params:
            msg = f"is a parameter of {CSV_PATH}; a JSON upload carries name, x and y in its body"
            raise unprocessable(["query", param], msg)
    name, x, y = _read_json(raw)
    return _stored(session, owner, name, Content.of(x, y), response, settings)


@router.post(
    "/csv", status_code=201, response_model=DatasetOut, openapi_extra={"requestBody": CSV_BODY},
    responses=UPLOADED,
)  # fmt: skip
def upload_csv(
    raw: CsvBody,
    response: Response,
    session: SessionDep,
    owner: OwnerDep,
    settings: SettingsDep,
    name: NameQuery,
    target: Targets,
) -> Dataset:
    """Store a data set sent as CSV: a header line, then one sample per line; the `target`
    columns form y. 201 with Location when new; 200 when its content is already there."""
    x, y = _read_csv(raw, target)
    return _stored(session, owner, name, Content.of(x, y), response, settings)


@router.post(
    "/npz", status_code=201, response_model=DatasetOut, openapi_extra={"requestBody": NPZ_BODY},
    responses=UPLOADED,
)  # fmt: skip
def upload_npz(
    file: NpzBody,
    response: Response,
    session: SessionDep,
    owner: OwnerDep,
    settings: SettingsDep,
    name: NameQuery,
) -> Dataset:
    """Store a data set sent as an .npz file of arrays `x` and `y`, up to
    DELTAFLOW_MAX_UPLOAD_BYTES (1 GiB by default; streamed to disk, not held in memory). 201
    with Location when new; 200 when its content is already there."""
    return _stored(session, owner, name, uploads.from_npz(file, settings), response, settings)


@router.post(
    "/parquet", status_code=201, response_model=DatasetOut,
    openapi_extra={"requestBody": PARQUET_BODY}, responses=UPLOADED,
)  # fmt: skip
def upload_parquet(
    file: ParquetBody,
    response: Response,
    session: SessionDep,
    owner: OwnerDep,
    settings: SettingsDep,
    name: NameQuery,
    target: Targets,
) -> Dataset:
    """Store a data set sent as a Parquet file, up to DELTAFLOW_MAX_UPLOAD_BYTES (as .npz);
    the `target` columns form y. 201 with Location when new; 200 when its content is already
    there."""
    content = uploads.from_parquet(file, target, settings)
    return _stored(session, owner, name, content, response, settings)


def _stored(
    session: Session, owner: str, name: str, content: Content, response: Response,
    settings: Settings,
) -> Dataset:  # fmt: skip
    limits.data_values(math.prod(content.x_shape), settings, ["body", "x"])
    digest = content.sha256()  # reads every value: a binary upload's NaN is refused here
    row, created = _put(session, owner, name, content, digest)
    if created:
        response.headers["Location"] = f"/v1/datasets/{row.id}"
    else:
        response.status_code = 200
    return row


@router.get("", response_model=Page[DatasetOut], responses=problems(422))
def list_datasets(
    session: SessionDep, owner: OwnerDep, limit: PageLimit = 50, cursor: CursorQuery = None
):
    """The caller's data sets, newest first."""
    query = select(Dataset).where(Dataset.owner == owner)
    return pagination.newest_first(session, query, Dataset, limit, cursor)


def _upload_other_methods() -> None:
    """The upload paths take POST only. Without these routes GET /v1/datasets/csv would reach
    the data set read below with the id "csv" and answer 422, where a client asked a method
    of a path."""
    raise HTTPException(405)


for _path in ("/csv", "/npz", "/parquet"):
    router.add_api_route(
        _path, _upload_other_methods, methods=["GET", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )  # fmt: skip


@router.get("/{dataset_id}", response_model=DatasetOut, responses=problems(404, 422))
def read_dataset(dataset_id: DatasetIdPath, session: SessionDep, owner: OwnerDep) -> Dataset:
    return get_owned(session, Dataset, dataset_id, owner)


def _read_json(raw: bytes) -> tuple[str, np.ndarray, np.ndarray]:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        msg = f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        raise unprocessable(["body"], msg) from None
    except UnicodeDecodeError:
        raise unprocessable(["body"], "is not UTF-8 text") from None
    except (ValueError, RecursionError):  # an integer over 4,300 digits; nesting Python refuses
        msg = "is JSON this API does not read: a number too long or arrays nested too deep"
        raise unprocessable(["body"], msg) from None
    try:
        body = DatasetCreate.model_validate(obj)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError(
            [{"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
        ) from None
    return body.name, *datasets.from_json(body)


def _read_csv(raw: bytes, target: list[str]) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise unprocessable(["body"], f"is not UTF-8 text (byte {exc.start})") from None
    return datasets.from_csv(text, target)


def _put(
    session: Session, owner: str, name: str, content: Content, digest: str
) -> tuple[Dataset, bool]:
    try:
        with session.begin():
            return datasets.put(session, owner, name, content, digest)
    except IntegrityError:
        # A concurrent upload stored the same content between our look-up and our insert.
        with session.begin():
            return datasets.put(session, owner, name, content, digest)
