"""create_app(): the FastAPI application. The engine and the queue are built in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import auth, errors, limits, openapi, startup
from api.logs import configure as configure_logging
from api.queue import Queue
from api.routes import (
    batches,
    compare,
    dashboard,
    datasets,
    exports,
    forks,
    health,
    history,
    job_actions,
    jobs,
    keys,
)  # fmt: skip
from api.routes.metrics import mount as mount_metrics
from models.db import make_engine, session_factory
from models.schema import check_database
from settings import Settings, get_settings

log = logging.getLogger("deltaflow.api")
V1_ROUTERS = (jobs, history, exports, compare, job_actions, forks, datasets, batches, keys)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_database(settings.database_url)  # a DatabaseProblem: see api/startup.py
        engine = make_engine(settings.database_url)
        app.state.settings = settings
        app.state.sessions = session_factory(engine)
        app.state.queue = Queue(settings)
        configure_logging(settings.log_format)  # uvicorn set its loggers up before
        _announce_auth(settings)
        yield
        app.state.queue.close()
        engine.dispose()

    app = FastAPI(
        title="deltaflow",
        version="1",
        summary="Training jobs for neural networks, with every epoch's loss and parameters kept.",
        lifespan=lifespan,
        # operationId = the handler's name (list_epochs, upload_npz): what a generated client
        # calls its functions, rather than FastAPI's name + path + method.
        generate_unique_id_function=lambda route: route.name,
        **_docs(settings),
    )
    app.include_router(health.router)
    mount_metrics(app, settings)  # GET /metrics, outside the OpenAPI document
    dashboard.install(app)  # `/` and `/static`: no data, so no key
    for module in V1_ROUTERS:
        app.include_router(module.router, **_v1_access(settings))
    app.add_exception_handler(RequestValidationError, errors.validation_error)
    # Starlette's too: an unknown path (404) or method (405) answers in the same shape.
    app.add_exception_handler(StarletteHTTPException, errors.http_error)
    app.add_middleware(
        limits.BodyLimit,
        max_bytes=settings.max_request_bytes,
        upload_bytes=settings.max_upload_bytes,
        upload_paths=datasets.BINARY_PATHS,
    )
    if settings.auth == "required":
        app.add_middleware(auth.RequireKey)
    app.add_middleware(startup.StartupSentence)
    openapi.install(app)
    return app


def _v1_access(settings: Settings) -> dict:
    """With keys required the OpenAPI document declares the bearer scheme and the 401 answer
    of every /v1 operation (the RequireKey middleware gives that answer)."""
    if settings.auth == "off":
        return {}
    return {
        "dependencies": [Depends(auth.bearer)],
        "responses": errors.problems(401),
    }


def _docs(settings: Settings) -> dict:
    if settings.docs == "open":
        return {}
    return {"docs_url": None, "redoc_url": None, "openapi_url": None}


def _announce_auth(settings: Settings) -> None:
    if settings.auth == "off":
        log.warning(
            "auth is off: every request acts as the local user %r; serve on 127.0.0.1 only, or "
            "set DELTAFLOW_AUTH=required",
            auth.LOCAL_USER.owner,
        )
    elif settings.bootstrap_key is None:
        log.info("auth is required; no DELTAFLOW_BOOTSTRAP_KEY is set, so only stored keys work")
    else:
        log.info("auth is required; the bootstrap key acts for %r", settings.bootstrap_owner)
