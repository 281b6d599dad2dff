"""/v1/datasets: upload a data set (JSON or CSV), list and read the caller's data sets."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import datasets, pagination
from api.deps import OwnerDep, SessionDep, get_owned
from api.errors import problems, unprocessable
from api.fields import Column, CursorQuery, Name, PageLimit
from api.schemas import DatasetCreate, DatasetOut, Page
from models.tables import Dataset

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

MEDIA_TYPES = ("application/json", "text/csv")

DatasetIdPath = Annotated[uuid.UUID, Path(description="The data set's id.")]
CsvName = Annotated[Name | None, Query(description="text/csv only: the data set's name.")]
Targets = Annotated[
    list[Column] | None,
    Query(
        max_length=100,
        description="text/csv only: the columns that form y, in order; repeat for several.",
    ),
]

CSV_EXAMPLE = "sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,0\n"
UPLOAD_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": DatasetCreate.model_json_schema()},
        "text/csv": {
            "schema": {
                "type": "string",
                "description": "A header line, then one sample per line; every value a finite "
                "number. The `target` columns form y, every other column is a feature of x.",
            },
            "example": CSV_EXAMPLE,
        },
    },
}


async def _upload(request: Request) -> tuple[str, bytes]:
    """(media type, body), read here because the handler dispatches on the content type. The
    body's size is bounded by limits.BodyLimit as it streams in."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in MEDIA_TYPES:
        given = f"content type {media!r}" if media else "no content type"
        msg = f"a data set is uploaded as {' or '.join(MEDIA_TYPES)}, not with {given}"
        raise HTTPException(415, detail=msg)
    return media, await request.body()


@router.post(
    "",
    status_code=201,
    response_model=DatasetOut,
    openapi_extra={"requestBody": UPLOAD_BODY},
    responses={
        200: {"model": DatasetOut, "description": "The same content was already stored."},
        **problems(413, 415, 422),
    },
)
def upload(
    body: Annotated[tuple[str, bytes], Depends(_upload)],
    response: Response,
    session: SessionDep,
    owner: OwnerDep,
    name: CsvName = None,
    target: Targets = None,
) -> Dataset:
    """Store a data set: JSON `{name, x, y}`, or CSV with `name` and `target` in the query.
    201 with Location when new; 200 with the stored data set when its content is already there."""
    media, raw = body
    if media == "text/csv":
        name, x, y = _read_csv(raw, name, target)
    else:
        name, x, y = _read_json(raw, name, target)
    row, created = _put(session, owner, name, x, y)
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


@router.get("/{dataset_id}", response_model=DatasetOut, responses=problems(404, 422))
def read_dataset(dataset_id: DatasetIdPath, session: SessionDep, owner: OwnerDep) -> Dataset:
    return get_owned(session, Dataset, dataset_id, owner)


def _read_json(
    raw: bytes, name: str | None, target: list[str] | None
) -> tuple[str, np.ndarray, np.ndarray]:
    for param, value in (("name", name), ("target", target)):
        if value is not None:
            msg = "is a text/csv parameter; a JSON upload carries name, x and y in its body"
            raise unprocessable(["query", param], msg)
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


def _read_csv(
    raw: bytes, name: str | None, target: list[str] | None
) -> tuple[str, np.ndarray, np.ndarray]:
    if name is None:
        raise unprocessable(["query", "name"], "a text/csv upload needs a name")
    if not target:
        msg = "a text/csv upload names its y columns: at least one `target` parameter"
        raise unprocessable(["query", "target"], msg)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise unprocessable(["body"], f"is not UTF-8 text (byte {exc.start})") from None
    return name, *datasets.from_csv(text, target)


def _put(
    session: Session, owner: str, name: str, x: np.ndarray, y: np.ndarray
) -> tuple[Dataset, bool]:
    try:
        with session.begin():
            return datasets.put(session, owner, name, x, y)
    except IntegrityError:
        # A concurrent upload stored the same content between our look-up and our insert.
        with session.begin():
            return datasets.put(session, owner, name, x, y)
