"""Receiving an event: keep it (once per source and id), match it against the routes, act,
and record what each matching route did.

The record is committed, with its audit event, before any route acts: its unique (source,
id) is the one place where concurrent copies of a delivery meet, so exactly one copy acts
and the others answer the record (200, `duplicate`). Routes' starts are idempotent besides
(keyed by the event), so even an event received again after its record was dropped by the
retention never starts a second deployment."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from api.gateway import Gateway
from api.services import audit
from api.services.events_actions import RouteActions
from api.services.events_matching import context, matches
from core.db import events as store
from core.db.events_tables import EventRow
from core.db.tables import utcnow
from core.models.apikeys import Principal
from core.models.events import (
    STORED_DATA_BYTES,
    CloudEvent,
    EventPage,
    EventRecord,
    EventRouteSpec,
    RouteOutcome,
)
from core.policies import RuleError
from core.settings import Settings

log = logging.getLogger("r2c.events")


def record(row: EventRow, duplicate: bool = False) -> EventRecord:
    return EventRecord.model_validate(
        {
            "id": row.id,
            "event_id": row.event_id,
            "source": row.source,
            "type": row.type,
            "subject": row.subject,
            "time": row.time,
            "received_at": row.received_at,
            "via": row.via,
            "received_by": row.received_by,
            "datacontenttype": row.datacontenttype,
            "extensions": row.extensions,
            "data": row.data,
            "data_truncated": row.data_truncated,
            "matched": row.matched,
            "outcomes": row.outcomes,
            "duplicate": duplicate,
        }
    )


def _stored_data(event: CloudEvent) -> tuple[Any, bool]:
    """The data as kept: whole up to STORED_DATA_BYTES of JSON, else nothing (flagged)."""
    data = event.data if event.data is not None else event.data_base64
    if data is None:
        return None, False
    size = len(json.dumps(data, separators=(",", ":")).encode())
    return (None, True) if size > STORED_DATA_BYTES else (data, False)


class EventService:
    """Receives events and lists those kept."""

    def __init__(
        self, sessions: async_sessionmaker[Any], gateway: Gateway, settings: Settings
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.actions = RouteActions(sessions, gateway, settings)

    async def receive(
        self, event: CloudEvent, principal: Principal, via: str
    ) -> tuple[EventRecord, bool]:
        """Keep the event and act on it; returns its record and whether it was new."""
        data, truncated = _stored_data(event)
        async with self.sessions() as session:
            row = EventRow(
                event_id=event.id,
                source=event.source,
                type=event.type,
                subject=event.subject,
                time=event.time,
                received_at=utcnow(),
                via=via,
                received_by=principal.initiator,
                datacontenttype=event.datacontenttype,
                extensions=dict(event.extensions),
                data=data,
                data_truncated=truncated,
                matched=[],
                outcomes=[],
            )
            session.add(row)
            try:
                await session.flush()
                await store.prune(
                    session,
                    self.settings.events_retention_count,
                    self.settings.events_retention_days,
                )
                await audit.commit(
                    session,
                    principal,
                    "event.received",
                    f"event {row.id}",
                    type=event.type,
                    source=event.source,
                    event_id=event.id,
                )
            except IntegrityError:
                await session.rollback()
                existing = await store.find_event(session, event.source, event.id)
                if existing is None:
                    raise
                return record(existing, duplicate=True), False
        matched, outcomes = await self._route(event)
        async with self.sessions() as session:
            done = await store.set_outcomes(
                session, row.id, matched, [o.model_dump(mode="json") for o in outcomes]
            )
            return record(done), True

    async def _route(self, event: CloudEvent) -> tuple[list[str], list[RouteOutcome]]:
        async with self.sessions() as session:
            routes = await store.routes(session, enabled_only=True)
        ctx = context(event)
        matched: list[str] = []
        outcomes: list[RouteOutcome] = []
        for route in routes:
            spec = EventRouteSpec.model_validate(route.spec)
            try:
                if not matches(spec.match, ctx):
                    continue
            except RuleError as err:
                outcomes.append(
                    RouteOutcome(
                        route=route.name,
                        result="error",
                        message=f"its expression could not be evaluated: {err}",
                    )
                )
                continue
            matched.append(route.name)
            outcomes.append(await self.actions.perform(route.name, route.role, spec, ctx))
        return matched, outcomes

    async def get(self, record_id: int) -> EventRecord:
        async with self.sessions() as session:
            return record(await store.get_event(session, record_id))

    async def page(
        self, *, event_type: str | None, since: datetime | None, before: int | None, limit: int
    ) -> EventPage:
        async with self.sessions() as session:
            rows = await store.page_events(
                session, event_type=event_type, since=since, before=before, limit=limit
            )
        more = len(rows) == limit
        return EventPage(
            items=[record(r) for r in rows], next_before=rows[-1].id if more and rows else None
        )
