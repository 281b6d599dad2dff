"""The OpenAPI document, made valid OpenAPI 3.1 that client generators accept.

FastAPI's document needs two corrections (done once, when it is first asked for):
- a server-sent-events operation carries `itemSchema`, an OpenAPI 3.2 field that 3.1
  validators (openapi-spec-validator) refuse; its event schema becomes the media type's
  `schema`, which is how 3.1 tools (schemathesis) read an event stream: one event at a time.
- an error status is documented under the operation's success media type (text/event-stream,
  application/octet-stream), but every error answers the JSON Problem body
  (api/errors.py): each 4xx is documented as application/json.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

PROBLEM = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
EVENT_STREAM = "text/event-stream"


def install(app: FastAPI) -> None:
    """Have `app.openapi()` (and /openapi.json) answer the corrected document."""
    generate = app.openapi  # FastAPI's, which caches its document in app.openapi_schema

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            correct(generate())
        return app.openapi_schema  # type: ignore[return-value]  # set by generate()

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way


def correct(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with both corrections made, in place."""
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if status.startswith("4"):
                    response["content"] = PROBLEM
                    continue
                stream = response.get("content", {}).get(EVENT_STREAM)
                if stream is not None and "itemSchema" in stream:
                    stream["schema"] = stream.pop("itemSchema")
    return doc
