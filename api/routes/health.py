"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(request: Request):
    """The database and the broker answer."""
    state = request.app.state
    checks = {
        "database": _check(lambda: _database(state)),
        "broker": _check(lambda: _broker(state)),
    }
    ok = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return body if ok else JSONResponse(body.model_dump(), status_code=503)


def _check(probe) -> str:
    try:
        probe()
    except Exception as exc:  # any failure means "not ready", with the reason shown
        return f"error: {exc}"
    return "ok"


def _database(state) -> None:
    with state.sessions() as s:
        s.execute(text("SELECT 1"))


def _broker(state) -> None:
    state.queue.check()
