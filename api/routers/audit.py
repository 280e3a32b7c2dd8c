"""`/api/v1/audit`: who did what, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.auth import Admin
from api.deps import SessionDep
from core.db import audit

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class AuditEvent(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    request_id: str | None


@router.get("", response_model=list[AuditEvent])
async def list_events(
    _: Admin, session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[AuditEvent]:
    """The most recent audit events."""
    rows = await audit.recent(session, limit)
    return [
        AuditEvent(
            id=r.id,
            at=r.at,
            actor=r.actor,
            action=r.action,
            target=r.target,
            detail=r.detail,
            request_id=r.request_id,
        )
        for r in rows
    ]
