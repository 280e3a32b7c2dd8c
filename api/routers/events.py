"""`/api/v1/events` (CloudEvents in, and the events kept) and `/api/v1/event-routes` (what
events start or steer); docs/events.md."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import AwareDatetime
from sqlalchemy.ext.asyncio import async_sessionmaker

from api.auth import Operator, Viewer
from api.deps import GatewayDep, SessionDep, SettingsDep
from api.openapi import errors
from api.services.events import EventService, unavailable_if_retryable
from api.services.events_http import STRUCTURED, from_http
from api.services.events_routes import EventRouteService
from core.errors import PayloadTooLargeError
from core.models.events import (
    EventPage,
    EventRecord,
    EventRoute,
    EventRouteCreate,
    EventRouteSpec,
    RouteName,
)

router = APIRouter(tags=["events"])


async def _events(request: Request, gateway: GatewayDep, settings: SettingsDep) -> EventService:
    sessions: async_sessionmaker[Any] = request.app.state.sessions
    return EventService(sessions, gateway, settings)


async def _routes(session: SessionDep) -> EventRouteService:
    return EventRouteService(session)


EventsDep = Annotated[EventService, Depends(_events)]
RoutesDep = Annotated[EventRouteService, Depends(_routes)]
RoutePath = Annotated[RouteName, Path(description="the route's name")]

_CLOUDEVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["specversion", "id", "source", "type"],
    "properties": {
        "specversion": {"type": "string", "enum": ["1.0"]},
        "id": {"type": "string", "minLength": 1, "maxLength": 256},
        "source": {"type": "string", "minLength": 1, "maxLength": 512},
        "type": {"type": "string", "minLength": 1, "maxLength": 256},
        "subject": {"type": "string", "maxLength": 512},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"type": "string", "maxLength": 128},
        "data": {},
    },
}
_RECEIVE = errors(400, 413, 422)
_RECEIVE[200] = {"model": EventRecord, "description": "an event already received (same source"
                 " and id): answered, not acted on again"}  # fmt: skip


@router.post(
    "/api/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventRecord,
    responses=_RECEIVE,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "structured mode; binary mode sends the attributes as ce- headers",
            "content": {STRUCTURED: {"schema": _CLOUDEVENT_SCHEMA}},
        }
    },
)
async def receive_event(
    request: Request,
    response: Response,
    principal: Operator,
    service: EventsDep,
    settings: SettingsDep,
) -> EventRecord:
    """Receive a CloudEvents 1.0 event, structured (`application/cloudevents+json`) or binary
    (`ce-` headers); the routes it matches act on it at once. The same source and id again
    answers the first one's record (200) and acts on nothing."""
    body = await request.body()
    if len(body) > settings.event_max_bytes:
        raise PayloadTooLargeError(
            f"the event is {len(body)} bytes; at most {settings.event_max_bytes}",
            hint="send a reference to large data rather than the data (R2C_EVENT_MAX_BYTES)",
        )
    event = from_http(request.headers, body)
    kept, created = await service.receive(event, principal, "api")
    unavailable_if_retryable(kept)
    if not created:
        response.status_code = status.HTTP_200_OK
    return kept


@router.get("/api/v1/events", response_model=EventPage)
async def list_events(
    _: Viewer,
    service: EventsDep,
    type: Annotated[str | None, Query(max_length=256, description="exact event type")] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="received at or after (with a time zone)")
    ] = None,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="the next_before of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> EventPage:
    """Events received, newest first, with what each matched and started (also those that
    matched nothing); without their data, which GET /api/v1/events/{id} shows."""
    return await service.page(event_type=type, since=since, before=before, limit=limit)


@router.get("/api/v1/events/{record_id}", response_model=EventRecord)
async def get_event(
    record_id: Annotated[int, Path(ge=1, le=2**62, description="the record's id")],
    _: Viewer,
    service: EventsDep,
) -> EventRecord:
    """One event received, with what it matched and started."""
    return await service.get(record_id)


@router.get("/api/v1/event-routes", response_model=list[EventRoute])
async def list_routes(_: Viewer, service: RoutesDep) -> list[EventRoute]:
    """Every route, by name."""
    return await service.all()


@router.post(
    "/api/v1/event-routes",
    status_code=status.HTTP_201_CREATED,
    response_model=EventRoute,
    responses=errors(409),
)
async def create_route(
    body: EventRouteCreate, principal: Operator, service: RoutesDep
) -> EventRoute:
    """Create a route; it acts with its writer's role, so a route that starts a workflow
    needs the role that starts it. 422 when it can never act (an unknown workflow type, a
    template whose fixed parts do not validate, an expression that does not compile)."""
    return await service.create(principal, body)


@router.get("/api/v1/event-routes/{name}", response_model=EventRoute)
async def get_route(name: RoutePath, _: Viewer, service: RoutesDep) -> EventRoute:
    """One route."""
    return await service.get(name)


@router.put("/api/v1/event-routes/{name}", response_model=EventRoute)
async def replace_route(
    name: RoutePath, spec: EventRouteSpec, principal: Operator, service: RoutesDep
) -> EventRoute:
    """Replace a route's match and action; it then acts with the role of this writer."""
    return await service.replace(principal, name, spec)


@router.delete("/api/v1/event-routes/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_route(name: RoutePath, principal: Operator, service: RoutesDep) -> Response:
    """Delete a route; events already received keep its name in their records."""
    await service.delete(principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
