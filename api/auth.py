"""Who is calling: API keys sent as `Authorization: Bearer dfk_…`.

Only a key's sha256 is stored. A presented key is hashed and looked up by that digest, then the
digests are compared with `hmac.compare_digest`: the lookup's timing can only reveal something
about a hash of a guess, never about a stored key. Revocation takes effect on the next request
(nothing is cached). With DELTAFLOW_AUTH=off every caller is the one local user, an admin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from fastapi import HTTPException, Request
from fastapi.security import HTTPBearer
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import problem
from models.tables import DEFAULT_OWNER, ApiKey
from settings import Settings

KEY_PREFIX = "dfk_"
MAX_KEY_CHARS = 200  # longer is never one of ours; refused before hashing
_CHALLENGE = {"WWW-Authenticate": "Bearer"}

# Declares the scheme in the OpenAPI document (and Swagger's "Authorize"); the header itself is
# read below, so that a missing and a malformed header get different sentences.
bearer = HTTPBearer(auto_error=False, description="An API key from `deltaflow keys create`.")


@dataclass(frozen=True)
class Caller:
    owner: str
    admin: bool
    key_id: uuid.UUID | None = None


LOCAL_USER = Caller(owner=DEFAULT_OWNER, admin=True)


def new_key() -> str:
    """A fresh random key: 256 bits, URL-safe, recognisable by its prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def unauthorized(sentence: str) -> HTTPException:
    return HTTPException(401, detail=sentence, headers=_CHALLENGE)


class RequireKey:
    """ASGI middleware for DELTAFLOW_AUTH=required: a /v1 request without a valid key ends here,
    before its body is read or parsed; a valid one carries its Caller in `request.state`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            return await self.app(scope, receive, send)
        request = Request(scope)
        try:
            caller = await run_in_threadpool(_identify, request)
        except HTTPException as exc:
            response = problem(exc.status_code, exc.detail, exc.headers)
            return await response(scope, receive, send)
        scope.setdefault("state", {})["caller"] = caller
        return await self.app(scope, receive, send)


def authenticate(request: Request) -> Caller:
    """The caller, as RequireKey identified it; the local user when auth is off."""
    if request.app.state.settings.auth == "off":
        return LOCAL_USER
    return request.state.caller


async def require_key(request: Request) -> Caller:
    """A dependency for routes outside /v1 that need a key whatever DELTAFLOW_AUTH says
    (e.g. /metrics with DELTAFLOW_METRICS=key)."""
    return await run_in_threadpool(_identify, request)


def _identify(request: Request) -> Caller:
    """The caller behind the request's key; 401 with a sentence for a missing, malformed,
    unknown or revoked one."""
    settings: Settings = request.app.state.settings
    key = _bearer_token(request.headers.get("authorization"))
    presented = digest(key)
    if settings.bootstrap_key is not None:
        bootstrap = digest(settings.bootstrap_key.get_secret_value())
        if hmac.compare_digest(presented, bootstrap):
            return Caller(owner=settings.bootstrap_owner, admin=True)
    with request.app.state.sessions() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.sha256 == presented))
    if row is None or not hmac.compare_digest(row.sha256, presented):
        raise unauthorized("the API key is not valid")
    if row.revoked_at is not None:
        raise unauthorized("the API key was revoked")
    return Caller(owner=row.owner, admin=row.admin, key_id=row.id)


def _bearer_token(header: str | None) -> str:
    if not header:
        raise unauthorized("this endpoint needs an API key: send `Authorization: Bearer KEY`")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token or len(token) > MAX_KEY_CHARS:
        raise unauthorized("the Authorization header must be `Bearer KEY` with one API key")
    return token
