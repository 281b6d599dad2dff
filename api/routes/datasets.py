"""/v1/datasets."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
