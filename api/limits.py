"""What one request may ask of the service: each limit a DELTAFLOW_MAX_* setting, each breach a
422 (413 for the body's size) that names the limit and the value."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem, unprocessable
from backprop.layout import Layout
from backprop.spec import TrainSpec
from settings import Settings


def check(spec: TrainSpec, x: np.ndarray | None, settings: Settings, where: list[str]) -> None:
    """Raise a 422 at `where` (plus the field) if the job is larger than the limits allow
    (x None: data already checked, as a fork's parent's)."""
    layers = spec.network.layers
    n_parameters = Layout(layers).size
    for value, setting, field, what in (
        (spec.epochs, "max_epochs", ["epochs"], "epochs"),
        (len(layers) - 1, "max_layers", ["network", "layers"], "layers with parameters"),
        (n_parameters, "max_parameters", ["network", "layers"], "parameters"),
        (0 if x is None else x.size, "max_data_values", ["dataset"],
         "data values (samples × features)"),
    ):  # fmt: skip
        within(value, setting, what, settings, ["body", *where, *field])


def within(value: int, setting: str, what: str, settings: Settings, loc: list[str]) -> None:
    """422 at `loc` when `value` (of `what`) is over the DELTAFLOW_* `setting`."""
    limit = getattr(settings, setting)
    if value > limit:
        msg = f"{value:,} {what} is over the limit of {limit:,} (DELTAFLOW_{setting.upper()})"
        raise unprocessable(loc, msg)


def data_values(n: int, settings: Settings, loc: list[str]) -> None:
    """422 for a data set of more than DELTAFLOW_MAX_DATA_VALUES values (samples × features):
    one sentence whether the upload or the job brings it."""
    within(n, "max_data_values", "data values (samples × features)", settings, loc)


class BodyLimit:
    """ASGI middleware: 413 for a request body over DELTAFLOW_MAX_REQUEST_BYTES (over
    DELTAFLOW_MAX_UPLOAD_BYTES on `upload_paths`, the binary uploads, which spool to disk), in
    the API's error shape, before anything parses the body — at once when Content-Length
    declares too much, else as soon as the streamed bytes pass the limit."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        upload_bytes: int | None = None,
        upload_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_bytes = max_bytes if upload_bytes is None else upload_bytes
        self.upload_paths = frozenset(upload_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] in self.upload_paths:
            limit, setting = self.upload_bytes, "DELTAFLOW_MAX_UPLOAD_BYTES"
        else:
            limit, setting = self.max_bytes, "DELTAFLOW_MAX_REQUEST_BYTES"
        over = f"is over the limit of {limit:,} bytes ({setting})"
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            sentence = f"the request body of {int(declared):,} bytes {over}"
            return await problem(413, sentence)(scope, receive, send)
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # Raised inside the route's body read: FastAPI answers it with errors.http_error.
                raise HTTPException(413, detail=f"the request body {over}")
            return message

        return await self.app(scope, limited, send)
