"""The event streams of deployments and releases, for any route that has authenticated its
caller and checked its scope (the API's routes, the dashboard's): each returns the response,
or raises NotFoundError (404) before any stream starts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from sse_starlette import EventSourceResponse

from api.live import sse
from api.live.hub import LiveHub
from api.live.poller import Fetch
from api.services.deployments import DeploymentService
from api.services.releases import ReleaseService
from core.db import deployments as deployment_store
from core.models.apikeys import Principal
from core.models.deployments import FINAL_STATES
from core.models.releases import FINAL_RELEASE_STATES
from core.settings import Settings


def hub_of(app: FastAPI) -> LiveHub:
    """The app's hub, made on first use: one per API process."""
    hub: LiveHub | None = getattr(app.state, "live_hub", None)
    if hub is None:
        settings: Settings = app.state.settings
        hub = LiveHub(
            interval=settings.live_poll_ms / 1000,
            per_target=settings.live_max_watchers_per_target,
            total=settings.live_max_watchers,
        )
        app.state.live_hub = hub
    return hub


async def deployment_stream(
    request: Request, deployment_id: str, last_event_id: str | None
) -> EventSourceResponse:
    """The deployment's stream. The caller has checked that the principal may read it."""
    app = request.app
    async with app.state.sessions() as session:
        await deployment_store.get(session, deployment_id)
    root = request.scope.get("root_path", "")

    async def fetch() -> tuple[str, bool]:
        async with app.state.sessions() as session:
            service = DeploymentService(session, app.state.gateway, app.state.settings, root)
            view = await service.get(deployment_id)
        return view.model_dump_json(by_alias=True), view.state in FINAL_STATES

    return event_response(request, ("deployment", deployment_id), fetch, last_event_id)


async def release_stream(
    request: Request, principal: Principal, release_id: str, last_event_id: str | None
) -> EventSourceResponse:
    """The release's stream; 404 as well when the principal may not read all of it."""
    app = request.app
    root = request.scope.get("root_path", "")
    async with app.state.sessions() as session:
        service = ReleaseService(session, app.state.gateway, app.state.settings, root)
        await service._visible(principal, release_id)
    # Every watcher is checked above, once; the shared poller reads as the system does.
    reader = Principal(key_id="live-updates", name="live-updates", role=principal.role)

    async def fetch() -> tuple[str, bool]:
        async with app.state.sessions() as session:
            service = ReleaseService(session, app.state.gateway, app.state.settings, root)
            view = await service.get(reader, release_id)
        return view.model_dump_json(by_alias=True), view.state in FINAL_RELEASE_STATES

    return event_response(request, ("release", release_id), fetch, last_event_id)


def event_response(
    request: Request, key: tuple[str, str], fetch: Fetch, last_event_id: str | None
) -> EventSourceResponse:
    """The stream of the target `key` (("deployment", id) or ("release", id)) read by `fetch`;
    every stream of one key shares one poller (the first stream's `fetch`)."""
    hub = hub_of(request.app)
    hub.admit(key)  # before the response starts: a refusal is a plain error answer
    resume = sse.last_event_id(last_event_id)
    settings: Settings = request.app.state.settings
    limit = settings.live_max_stream_seconds

    async def events() -> AsyncIterator[Any]:
        async for snapshot in hub.snapshots(key, fetch, resume, max_seconds=limit):
            yield sse.event_of(snapshot)

    # sse-starlette adds Cache-Control: no-store and X-Accel-Buffering: no (nginx then
    # passes events on at once).
    return EventSourceResponse(
        events(), ping=settings.live_ping_seconds, ping_message_factory=sse.ping, sep="\n"
    )
