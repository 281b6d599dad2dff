"""The web dashboard: one HTML page at `/` and its static files (JS modules, CSS, the vendored
uPlot) under `/static`. They hold no data and are served without an API key; every /v1 request
the page makes carries the key the user gives it."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    # no-cache: the browser revalidates (ETag), so a new release's page is never stale.
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


class _Revalidated(StaticFiles):
    """Static files the browser checks again on every load: the JS modules import one another
    by plain URL, and a stale module mixed with fresh ones would break the page."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", _Revalidated(directory=STATIC), name="static")
