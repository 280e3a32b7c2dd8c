"""Commit a change together with its audit event, so neither exists without the other."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import audit
from core.logging import request_id_var
from core.models.apikeys import Principal


async def commit_with_audit(
    session: AsyncSession, principal: Principal, action: str, target: str, **detail: Any
) -> None:
    await audit.record(
        session,
        actor=principal.initiator,
        action=action,
        target=target,
        detail=detail,
        request_id=request_id_var.get(),
    )
    await session.commit()
