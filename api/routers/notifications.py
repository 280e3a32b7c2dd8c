"""(issue 10: notifications) Filled in by that work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["notifications"])
