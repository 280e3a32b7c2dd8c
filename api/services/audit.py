"""The one place a change is committed: together with its audit event, so neither exists
without the other. Every mutating service method ends here."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import audit
from core.logging import request_id_var
from core.models.apikeys import Principal


async def commit(
    session: AsyncSession, principal: Principal, action: str, target: str, **detail: Any
) -> None:
    """Record who did `action` to `target`, and commit it with the session's changes."""
    await audit.record(
        session,
        actor=principal.initiator,
        action=action,
        target=target,
        detail={k: v for k, v in detail.items() if v is not None},
        request_id=request_id_var.get(),
    )
    await session.commit()
