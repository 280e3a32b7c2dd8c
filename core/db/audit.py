"""The audit trail: one row per mutating action, with who did it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.tables import AuditEventRow, utcnow


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> None:
    session.add(
        AuditEventRow(
            at=utcnow(),
            actor=actor,
            action=action,
            target=target,
            detail=detail or {},
            request_id=request_id,
        )
    )


async def recent(session: AsyncSession, limit: int = 100) -> list[AuditEventRow]:
    query = select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())
