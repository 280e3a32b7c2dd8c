"""`/api/v1/policies`."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/policies", tags=["policies"])
