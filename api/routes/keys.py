"""/v1/keys: create, list and revoke API keys. Admin keys only (with DELTAFLOW_AUTH=off the one
local user is an admin). A key is returned once, at creation; only its sha256 is stored."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response
from sqlalchemy import select

from api import auth, pagination
from api.deps import AdminDep, SessionDep
from api.errors import problems
from api.fields import CursorQuery, PageLimit
from api.schemas import KeyCreate, KeyCreated, KeyOut, Page
from models.base import utcnow
from models.tables import ApiKey

router = APIRouter(prefix="/v1/keys", tags=["keys"])
KeyId = Annotated[uuid.UUID, Path(description="The key's id (not the key).")]
PREFIX_CHARS = 12  # "dfk_" and 8 random characters: enough to tell keys apart, useless to guess


@router.post("", status_code=201, response_model=KeyCreated, responses=problems(403, 413, 422))
def create_key(body: KeyCreate, session: SessionDep, caller: AdminDep, response: Response):
    """A new random key for `owner` (default: the caller's). The response is the only place the
    key ever appears: store it now."""
    key = auth.new_key()
    row = ApiKey(
        sha256=auth.digest(key),
        prefix=key[:PREFIX_CHARS],
        name=body.name,
        owner=body.owner or caller.owner,
        admin=body.admin,
    )
    with session.begin():
        session.add(row)
    response.headers["Location"] = f"/v1/keys/{row.id}"
    return KeyCreated(**KeyOut.model_validate(row).model_dump(), key=key)


@router.get("", response_model=Page[KeyOut], responses=problems(403, 422))
def list_keys(
    session: SessionDep,
    _caller: AdminDep,
    limit: PageLimit = 50,
    cursor: CursorQuery = None,
):
    """Every key, revoked ones included, newest first; never the keys themselves."""
    return pagination.newest_first(session, select(ApiKey), ApiKey, limit, cursor)


@router.delete("/{key_id}", response_model=KeyOut, responses=problems(403, 404, 422))
def revoke_key(key_id: KeyId, session: SessionDep, _caller: AdminDep) -> ApiKey:
    """Revoke a key: from the next request on it answers 401. Revoking twice changes nothing."""
    with session.begin():
        row = session.get(ApiKey, key_id, with_for_update=True)
        if row is None:
            raise HTTPException(404, detail=f"API key {key_id} not found")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
    return row
