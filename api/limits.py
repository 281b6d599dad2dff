"""What one request may ask of the service: each limit a DELTAFLOW_MAX_* setting, each breach a
422 (413 for the body's size) that names the limit and the value."""

from __future__ import annotations

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
        limit = getattr(settings, setting)
        if value > limit:
            raise unprocessable(
                ["body", *where, *field],
                f"{value:,} {what} is over the limit of {limit:,} (DELTAFLOW_{setting.upper()})",
            )


class BodyLimit:
    """ASGI middleware: 413 for a request body over DELTAFLOW_MAX_REQUEST_BYTES, in the API's
    error shape, before anything parses the body — at once when Content-Length declares too
    much, else as soon as the streamed bytes pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            sentence = f"the request body of {int(declared):,} bytes {self._over}"
            return await problem(413, sentence)(scope, receive, send)
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # Raised inside the route's body read: FastAPI answers it with errors.http_error.
                raise HTTPException(413, detail=f"the request body {self._over}")
            return message

        return await self.app(scope, limited, send)

    @property
    def _over(self) -> str:
        return f"is over the limit of {self.max_bytes:,} bytes (DELTAFLOW_MAX_REQUEST_BYTES)"
