"""Queries of events in: events received (bounded by count and age), routes, webhook sources."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.events_tables import EventRouteRow, EventRow, WebhookSourceRow
from core.db.tables import utcnow
from core.errors import NotFoundError


async def find_event(session: AsyncSession, source: str, event_id: str) -> EventRow | None:
    query = select(EventRow).where(EventRow.source == source, EventRow.event_id == event_id)
    return (await session.execute(query)).scalar_one_or_none()


async def get_event(session: AsyncSession, record_id: int) -> EventRow:
    row = await session.get(EventRow, record_id)
    if row is None:
        raise NotFoundError(
            f"no event {record_id}",
            hint="GET /api/v1/events lists the events kept (older ones are dropped)",
        )
    return row


async def page_events(
    session: AsyncSession,
    *,
    event_type: str | None,
    since: datetime | None,
    before: int | None,
    limit: int,
) -> list[EventRow]:
    """Newest first: `limit` events older than record `before`, received at or after `since`."""
    query = select(EventRow)
    if event_type is not None:
        query = query.where(EventRow.type == event_type)
    if since is not None:
        query = query.where(EventRow.received_at >= since)
    if before is not None:
        query = query.where(EventRow.id < before)
    query = query.order_by(EventRow.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())


async def set_outcomes(
    session: AsyncSession, record_id: int, matched: list[str], outcomes: list[dict[str, Any]]
) -> EventRow:
    row = await get_event(session, record_id)
    row.matched = matched
    row.outcomes = outcomes
    await session.commit()
    return row


async def prune(session: AsyncSession, keep: int, days: int) -> None:
    """Drop events older than `days`, and all but the newest `keep`; the caller commits."""
    cutoff = utcnow() - timedelta(days=days)
    await session.execute(delete(EventRow).where(EventRow.received_at < cutoff))
    oldest_kept = select(EventRow.id).order_by(EventRow.id.desc()).offset(keep - 1).limit(1)
    boundary = (await session.execute(oldest_kept)).scalar_one_or_none()
    if boundary is not None:
        await session.execute(delete(EventRow).where(EventRow.id < boundary))


# ----------------------------------------------------------------------------- routes


async def routes(session: AsyncSession, *, enabled_only: bool = False) -> list[EventRouteRow]:
    query = select(EventRouteRow).order_by(EventRouteRow.name)
    if enabled_only:
        query = query.where(EventRouteRow.enabled.is_(True))
    return list((await session.execute(query)).scalars())


async def find_route(session: AsyncSession, name: str) -> EventRouteRow | None:
    return await session.get(EventRouteRow, name)


async def get_route(session: AsyncSession, name: str) -> EventRouteRow:
    row = await find_route(session, name)
    if row is None:
        raise NotFoundError(f"no event route {name!r}", hint="GET /api/v1/event-routes lists them")
    return row


async def route_count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count(EventRouteRow.name)))).scalar_one())


# ----------------------------------------------------------------------------- sources


async def sources(session: AsyncSession) -> list[WebhookSourceRow]:
    query = select(WebhookSourceRow).order_by(WebhookSourceRow.name)
    return list((await session.execute(query)).scalars())


async def find_source(session: AsyncSession, name: str) -> WebhookSourceRow | None:
    return await session.get(WebhookSourceRow, name)


async def get_source(session: AsyncSession, name: str) -> WebhookSourceRow:
    row = await find_source(session, name)
    if row is None:
        raise NotFoundError(
            f"no webhook source {name!r}",
            hint="an admin creates it: POST /api/v1/webhook-sources",
        )
    return row
