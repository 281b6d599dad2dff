"""GET /metrics in the Prometheus text format (api/metrics.py builds it from the database).

DELTAFLOW_METRICS: open (anyone), key (any valid API key, whatever DELTAFLOW_AUTH says), off
(the route is not mounted: 404). Never in the OpenAPI document, which describes JSON.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi.params import Depends as DependsParam
from prometheus_client import CONTENT_TYPE_LATEST

from api import auth
from api.deps import SessionDep, SettingsDep
from api.metrics import exposition
from settings import Settings

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(session: SessionDep, settings: SettingsDep) -> Response:
    return Response(exposition(session, settings.lease_ttl), media_type=CONTENT_TYPE_LATEST)


def access(settings: Settings) -> list[DependsParam]:
    """The router's dependencies for DELTAFLOW_METRICS (the app does not mount it when off)."""
    return [Depends(auth.require_key)] if settings.metrics == "key" else []


def mount(app: FastAPI, settings: Settings) -> None:
    """Serve /metrics as DELTAFLOW_METRICS says; off leaves it unknown (404)."""
    if settings.metrics != "off":
        app.include_router(router, dependencies=access(settings))
