"""Stop-the-line switches in the store (the caller audits in the same transaction)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.line_stops_tables import LineStopRow
from core.models.line_stops import GLOBAL_SCOPE, LineStop, pipeline_scope


def _view(row: LineStopRow) -> LineStop:
    return LineStop(scope=row.scope, reason=row.reason, set_by=row.set_by, set_at=row.set_at)


async def all_stops(session: AsyncSession) -> list[LineStop]:
    rows = (await session.execute(select(LineStopRow).order_by(LineStopRow.scope))).scalars()
    return [_view(row) for row in rows]


async def active(session: AsyncSession, pipeline: str | None = None) -> LineStop | None:
    """The stop that halts automation for `pipeline` (or for anything, without one): the global
    stop first, then the pipeline's own."""
    scopes = [GLOBAL_SCOPE] + ([pipeline_scope(pipeline)] if pipeline else [])
    for scope in scopes:
        row = await session.get(LineStopRow, scope)
        if row is not None:
            return _view(row)
    return None


async def put(session: AsyncSession, scope: str, reason: str, set_by: str) -> LineStop:
    """Set (or re-word) the stop of `scope`."""
    row = await session.get(LineStopRow, scope)
    if row is None:
        row = LineStopRow(scope=scope, reason=reason, set_by=set_by, set_at=datetime.now(UTC))
        session.add(row)
    else:
        row.reason, row.set_by, row.set_at = reason, set_by, datetime.now(UTC)
    await session.flush()
    return _view(row)


async def remove(session: AsyncSession, scope: str) -> LineStop | None:
    """Clear the stop of `scope`; the stop that was in force, or None if there was none."""
    row = await session.get(LineStopRow, scope)
    if row is None:
        return None
    view = _view(row)
    await session.delete(row)
    await session.flush()
    return view
