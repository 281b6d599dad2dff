"""A start that fails because the database is unusable is reported by its sentence alone.

Starlette reports any exception from the lifespan with the whole traceback, which uvicorn logs
before "Application startup failed. Exiting."; for a DatabaseProblem (models/schema.py) the
sentence, which names the URL and what to do, is the whole report.
"""

from __future__ import annotations

import sys

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.schema import DatabaseProblem


class StartupSentence:
    """ASGI middleware: it only touches the lifespan's `startup.failed` message."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)

        async def report(message: Message) -> None:
            # Starlette sends startup.failed from inside its `except` block, so the exception
            # being handled here is the one that failed the start.
            failure = sys.exc_info()[1]
            if message["type"] == "lifespan.startup.failed" and isinstance(
                failure, DatabaseProblem
            ):
                message = {**message, "message": str(failure)}
            await send(message)

        return await self.app(scope, receive, report)
