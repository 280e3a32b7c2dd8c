"""`GET /api/v1/deployments/{id}/events` and `/api/v1/releases/{id}/events`: server-sent
event streams of a deployment's or a release's state (docs/live-updates.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from sse_starlette import EventSourceResponse

from api.auth import Viewer
from api.deps import GatewayDep, SessionDep, SettingsDep
from api.live import sse
from api.live.hub import LiveHub
from api.live.poller import Fetch
from api.openapi import errors
from api.routers.releases import ReleaseId
from api.services.deployments import DeploymentService
from api.services.releases import ReleaseService
from core.db import deployments as deployment_store
from core.models.apikeys import Principal
from core.models.deployments import FINAL_STATES
from core.models.releases import FINAL_RELEASE_STATES
from core.settings import Settings

router = APIRouter(tags=["live updates"])

LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=40,
        description="the id of the last event received: resume from the current state",
    ),
]


def _documented(view: str) -> dict[int | str, dict[str, Any]]:
    """The stream's statuses, its 200 a schema of one event (OpenAPI 3.1: the schema of an
    event stream describes each event): `data` is the JSON of `view`, as GET answers it."""
    event = {
        "type": "object",
        "required": ["event", "id", "data"],
        "properties": {
            "event": {"enum": ["status", "end"]},
            "id": {"type": "string", "pattern": "^[0-9]{1,19}$"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": f"#/components/schemas/{view}"},
            },
        },
    }
    ok = {
        "description": "`text/event-stream`: a `status` event (`id`, and the JSON body GET "
        "answers) on connect and at each change, then `end` with the final body; `: ping` "
        "comments between (docs/live-updates.md)",
        "content": {"text/event-stream": {"schema": event}},
    }
    return {200: ok, **errors(404)}


def _hub(request: Request) -> LiveHub:
    """The process's hub, made on first use (one per app)."""
    state = request.app.state
    hub: LiveHub | None = getattr(state, "live_hub", None)
    if hub is None:
        settings: Settings = state.settings
        hub = LiveHub(
            interval=settings.live_poll_ms / 1000,
            per_target=settings.live_max_watchers_per_target,
            total=settings.live_max_watchers,
        )
        state.live_hub = hub
    return hub


async def _stream(
    request: Request, key: tuple[str, str], fetch: Fetch, last_event_id: str | None
) -> EventSourceResponse:
    hub = _hub(request)
    hub.admit(key)  # before the response starts: a refusal is a plain error answer
    resume = sse.last_event_id(last_event_id)

    settings: Settings = request.app.state.settings
    limit = settings.live_max_stream_seconds

    async def events() -> AsyncIterator[Any]:
        async for snapshot in hub.snapshots(key, fetch, resume, max_seconds=limit):
            yield sse.event_of(snapshot)

    return EventSourceResponse(
        events(),
        ping=settings.live_ping_seconds,
        ping_message_factory=sse.ping,
        sep="\n",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/api/v1/deployments/{deployment_id}/events",
    response_class=EventSourceResponse,
    responses=_documented("DeploymentView"),
)
async def deployment_events(
    deployment_id: str,
    request: Request,
    _: Viewer,
    session: SessionDep,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """The deployment's state as server-sent events: its body (as GET answers it) on
    connect and whenever it changes, then `end` once it has ended. One poller per deployment
    serves every watcher. 404 for an unknown id."""
    await deployment_store.get(session, deployment_id)
    await session.close()  # the stream may last long: hold no connection of the store
    app = request.app
    root = request.scope.get("root_path", "")

    async def fetch() -> tuple[str, bool]:
        async with app.state.sessions() as poll_session:
            service = DeploymentService(poll_session, app.state.gateway, app.state.settings, root)
            view = await service.get(deployment_id)
        return view.model_dump_json(by_alias=True), view.state in FINAL_STATES

    return await _stream(request, ("deployment", deployment_id), fetch, last_event_id)


@router.get(
    "/api/v1/releases/{release_id}/events",
    response_class=EventSourceResponse,
    responses=_documented("ReleaseView"),
)
async def release_events(
    release_id: ReleaseId,
    request: Request,
    principal: Viewer,
    session: SessionDep,
    gateway: GatewayDep,
    settings: SettingsDep,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """The release's state as server-sent events, as for a deployment. 404 for an unknown
    id, or a release the caller may not read every component of."""
    root = request.scope.get("root_path", "")
    await ReleaseService(session, gateway, settings, root)._visible(principal, release_id)
    await session.close()
    app = request.app
    # Every watcher was checked above; the poller reads as the system does.
    reader = Principal(key_id="live-updates", name="live-updates", role=principal.role)

    async def fetch() -> tuple[str, bool]:
        async with app.state.sessions() as poll_session:
            service = ReleaseService(poll_session, app.state.gateway, app.state.settings, root)
            view = await service.get(reader, release_id)
        return view.model_dump_json(by_alias=True), view.state in FINAL_RELEASE_STATES

    return await _stream(request, ("release", release_id), fetch, last_event_id)
