"""Error bodies: {"detail": …, "message": "<field path>: <sentence>"} for every 4xx."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def unprocessable(loc: list[str], msg: str) -> HTTPException:
    """A 422 in the same shape as FastAPI's own validation errors."""
    return HTTPException(422, detail=[{"loc": loc, "msg": msg, "type": "value_error"}])


def _sentence(error: dict) -> str:
    """`network.layers: …` for a body field, `body: …` for the body as a whole."""
    loc = [str(part) for part in error.get("loc", ())]
    where = ".".join(loc[1:] if loc[:1] == ["body"] and len(loc) > 1 else loc) or "request"
    return f"{where}: {error.get('msg', '')}"


def _clean(error: dict) -> dict:
    msg = str(error["msg"]).removeprefix("Value error, ")
    return {"loc": list(error["loc"]), "msg": msg, "type": error["type"]}


async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_clean(e) for e in exc.errors()]
    message = "; ".join(_sentence(e) for e in errors)
    return JSONResponse({"detail": errors, "message": message}, status_code=422)


async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
    detail = exc.detail
    message = "; ".join(map(_sentence, detail)) if isinstance(detail, list) else str(detail)
    return JSONResponse(
        {"detail": detail, "message": message}, status_code=exc.status_code, headers=exc.headers
    )
