"""Releases in the store: created by the API, ended by the release workflow's last activity."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.releases_tables import ReleaseRow
from core.errors import NotFoundError
from core.models.releases import FINAL_RELEASE_STATES, ReleaseStatus

MAX_LISTED = 200


async def get(session: AsyncSession, release_id: str) -> ReleaseRow:
    row = await session.get(ReleaseRow, release_id)
    if row is None:
        raise NotFoundError(f"no release {release_id!r}", hint="GET /api/v1/releases lists them")
    return row


async def newest(session: AsyncSession, limit: int = MAX_LISTED) -> list[ReleaseRow]:
    query = select(ReleaseRow).order_by(ReleaseRow.created_at.desc()).limit(limit)
    return list((await session.execute(query)).scalars().all())


async def record(session: AsyncSession, status: ReleaseStatus) -> None:
    """The release's state as its workflow reports it (the final one with its status)."""
    row = await session.get(ReleaseRow, status.release_id)
    if row is None:  # started outside the API (the orchestration API, the UI): nothing kept
        return
    row.state = status.state.value
    row.reason = status.reason
    row.failed_component = status.failed_component
    row.status = status.model_dump(mode="json")
    if status.state in FINAL_RELEASE_STATES:
        row.finished_at = status.finished_at
