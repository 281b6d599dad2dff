"""Error bodies: {"detail": …, "message": "<field path>: <sentence>"} for every 4xx."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.schemas import Problem

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

# What each error status means, for the `responses=` of the routes that can answer it.
MEANINGS = {
    401: "No valid API key: missing, malformed, unknown or revoked; `message` says which.",
    403: "The API key is valid but may not do this (managing keys needs an admin key).",
    404: "No such resource for this caller; `message` names it.",
    409: "The request conflicts with the resource's state; `message` says how.",
    413: "The body is larger than DELTAFLOW_MAX_REQUEST_BYTES; nothing of it was parsed.",
    405: "The path does not take this method; `Allow` lists those it takes.",
    415: "The body's content type is not one this operation reads.",
    422: "A parameter or a body field is invalid; `message` names it and says what is expected.",
}


def problems(*codes: int) -> dict[int | str, dict]:
    """OpenAPI `responses=` for these error statuses, each with the Problem body (as JSON
    whatever the operation's success answers: api/openapi.py sees to that)."""
    return {code: {"model": Problem, "description": MEANINGS[code]} for code in codes}


def binary(description: str) -> dict:
    """An OpenAPI response whose body is a file, for the `responses=` of an operation that
    answers one (a generated client then returns its bytes)."""
    schema = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}
    return {"description": description, "content": {"application/octet-stream": {"schema": schema}}}


def unprocessable(loc: list[str], msg: str) -> HTTPException:
    """A 422 in the same shape as FastAPI's own validation errors."""
    return HTTPException(422, detail=[{"loc": loc, "msg": msg, "type": "value_error"}])


def problem(status: int, sentence: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer given outside a route (by middleware), in the same shape."""
    return JSONResponse(
        {"detail": sentence, "message": sentence}, status_code=status, headers=headers
    )


def _sentence(error: dict) -> str:
    """`network.layers: …` for a body field, `body: …` for the body as a whole."""
    loc = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "json_invalid" and len(loc) == 2:  # FastAPI's ["body", offset]
        return f"body: is not valid JSON ({error.get('msg')} at character {loc[1]})"
    if loc[:1] == ["body"] and len(loc) > 1:
        loc = loc[1:]
    # A union told apart by a key names the variant by that key: dataset.inline.inline.x
    loc = [p for i, p in enumerate(loc) if i == 0 or p != loc[i - 1] or p.isdigit()]
    return f"{'.'.join(loc) or 'request'}: {error.get('msg', '')}"


def _clean(error: dict) -> dict:
    msg = str(error["msg"]).removeprefix("Value error, ")
    return {"loc": list(error["loc"]), "msg": msg, "type": error["type"]}


async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_clean(e) for e in exc.errors()]
    message = "; ".join(_sentence(e) for e in errors)
    return JSONResponse({"detail": errors, "message": message}, status_code=422)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's and Starlette's HTTPException alike (an unknown path, a method not allowed)."""
    if exc.status_code == 405:
        return _method_not_allowed(request)
    if exc.status_code == 400 and exc.__cause__ is not None:
        return _unreadable_body(exc.__cause__)
    detail = exc.detail
    message = "; ".join(map(_sentence, detail)) if isinstance(detail, list) else str(detail)
    return JSONResponse(
        {"detail": detail, "message": message}, status_code=exc.status_code, headers=exc.headers
    )


def _unreadable_body(cause: BaseException) -> JSONResponse:
    """FastAPI's 400 for a JSON body it could not decode, as the 422 it gives for bad JSON
    syntax, with a sentence saying what was wrong."""
    if isinstance(cause, UnicodeDecodeError):
        msg = f"is not UTF-8 text (byte {cause.start})"
    elif isinstance(cause, RecursionError):
        msg = "nests arrays or objects too deeply to read"
    else:  # json refuses integers of over 4,300 digits with a ValueError
        msg = f"is not JSON this API reads: {cause}"
    error = {"loc": ["body"], "msg": msg, "type": "json_invalid"}
    return JSONResponse({"detail": [error], "message": _sentence(error)}, status_code=422)


def _method_not_allowed(request: Request) -> JSONResponse:
    """405 whose Allow lists every method of the path. Starlette's names only those of the first
    route matching the path, and GET /v1/jobs and POST /v1/jobs are two routes: so each method
    is tried against the routes as the router would. A path the document lists as it is
    (/v1/datasets/csv) takes only its own methods, not those of a template it also fits
    (GET /v1/datasets/{dataset_id}, which would only refuse the id)."""
    allowed = [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    literal = request.app.openapi()["paths"].get(request.url.path)
    if literal is not None:
        allowed = [m for m in allowed if m.lower() in literal or (m == "HEAD" and "get" in literal)]
    allow = ", ".join(allowed)
    sentence = f"{request.method} is not a method of {request.url.path}; it takes {allow}"
    return problem(405, sentence, headers={"Allow": allow})
