"""Receiving an event: keep it (once per source and id), match it against the routes, act,
and record what each matching route did.

The record is committed, with its audit event, before any route acts: its unique (source,
id) is the one place where concurrent copies of a delivery meet, so exactly one copy acts
and the others answer the record (200, `duplicate`). Routes' starts are idempotent besides
(keyed by the event), so even an event received again after its record was dropped by the
retention never starts a second deployment."""

from __future__ import annotations

import json
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
from core.errors import DependencyUnavailableError
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


def record(row: EventRow, duplicate: bool = False, with_data: bool = True) -> EventRecord:
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
            "data": row.data if with_data else None,
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


def unavailable_if_retryable(kept: EventRecord) -> None:
    """503 when a route's start failed because a server was unreachable: the event is kept,
    and the sender's retry of it tries that start again (and nothing else)."""
    failed = [o for o in kept.outcomes if o.retryable]
    if failed:
        raise DependencyUnavailableError(
            f"event {kept.id} was kept, but route {failed[0].route!r} could not start its "
            f"workflow: {failed[0].message}",
            hint="send the same event again (same source and id) once the server is back: "
            "only the starts that failed are tried again",
            event=kept.id,
        )


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
        existing: EventRow | None = None
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
        if existing is not None:
            return await self._again(existing, event), False
        matched, outcomes = await self._route(event)
        async with self.sessions() as session:
            done = await store.set_outcomes(
                session, row.id, matched, [o.model_dump(mode="json") for o in outcomes]
            )
            return record(done), True

    async def _again(self, kept: EventRow, event: CloudEvent) -> EventRecord:
        """A repeat of an event: it acts on nothing, except the starts that failed because a
        server was unreachable (idempotent: keyed by the event), which it tries again."""
        outcomes = [RouteOutcome.model_validate(o) for o in kept.outcomes]
        if not any(o.retryable for o in outcomes):
            return record(kept, duplicate=True)
        async with self.sessions() as session:
            routes = {r.name: r for r in await store.routes(session, enabled_only=True)}
        ctx = context(event)
        for index, outcome in enumerate(outcomes):
            route = routes.get(outcome.route)
            if outcome.retryable and route is not None:
                spec = EventRouteSpec.model_validate(route.spec)
                outcomes[index] = await self.actions.perform(route.name, route.role, spec, ctx)
        async with self.sessions() as session:
            done = await store.set_outcomes(
                session, kept.id, kept.matched, [o.model_dump(mode="json") for o in outcomes]
            )
            return record(done, duplicate=True)

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
            # Without data: a page stays small (GET /api/v1/events/{id} has it).
            items=[record(r, with_data=False) for r in rows],
            next_before=rows[-1].id if more and rows else None,
        )
