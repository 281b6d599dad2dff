"""create_app(): the FastAPI application. Engines and the Celery app are built in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError

from api import errors
from api.routes import batches, datasets, health, history, job_actions, jobs
from models import make_engine, session_factory
from settings import Settings, get_settings
from worker.celery_app import make_celery


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        app.state.settings = settings
        app.state.sessions = session_factory(engine)
        app.state.celery = make_celery(settings)
        yield
        engine.dispose()

    app = FastAPI(
        title="deltaflow",
        version="1",
        summary="Training jobs for neural networks, with every epoch's loss and parameters kept.",
        lifespan=lifespan,
        max_body_size=settings.max_request_bytes,  # 413 before the body is parsed
    )
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(history.router)
    app.include_router(job_actions.router)
    app.include_router(datasets.router)
    app.include_router(batches.router)
    app.add_exception_handler(RequestValidationError, errors.validation_error)
    app.add_exception_handler(HTTPException, errors.http_error)
    return app
