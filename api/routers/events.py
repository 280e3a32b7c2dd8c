"""(issue 10: events) Filled in by that work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["events"])
