"""`/api/v1/configuration`."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/configuration", tags=["configuration"])
