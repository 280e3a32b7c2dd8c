"""(issue 10: schedules) Filled in by that work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["schedules"])
