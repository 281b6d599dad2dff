"""/v1/jobs/{id}: delete, predict, events."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
