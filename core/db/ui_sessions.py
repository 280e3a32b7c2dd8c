"""Queries of the dashboard's sessions (core/db/ui_sessions_tables.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.ui_sessions_tables import UiSessionRow


async def get(session: AsyncSession, id_hash: str) -> UiSessionRow | None:
    return await session.get(UiSessionRow, id_hash)


def add(
    session: AsyncSession,
    id_hash: str,
    data: dict[str, Any],
    now: datetime,
    expires_at: datetime,
) -> None:
    session.add(
        UiSessionRow(id_hash=id_hash, data=data, created_at=now, seen_at=now, expires_at=expires_at)
    )


async def touch(session: AsyncSession, id_hash: str, now: datetime) -> None:
    await session.execute(
        update(UiSessionRow).where(UiSessionRow.id_hash == id_hash).values(seen_at=now)
    )


async def remove(session: AsyncSession, id_hash: str) -> None:
    await session.execute(delete(UiSessionRow).where(UiSessionRow.id_hash == id_hash))


async def purge(session: AsyncSession, idle_before: datetime, now: datetime) -> None:
    """Delete sessions past their absolute end or idle since `idle_before`."""
    await session.execute(
        delete(UiSessionRow).where(
            (UiSessionRow.expires_at <= now) | (UiSessionRow.seen_at < idle_before)
        )
    )
