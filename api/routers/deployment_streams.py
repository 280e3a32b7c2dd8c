"""`GET /api/v1/deployments/{id}/events` and `/api/v1/releases/{id}/events`: server-sent
event streams of a deployment's or a release's state (docs/live-updates.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from sse_starlette import EventSourceResponse

from api.auth import Viewer
from api.live.streams import deployment_stream, release_stream
from api.openapi import errors
from api.routers.releases import ReleaseId

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


@router.get(
    "/api/v1/deployments/{deployment_id}/events",
    response_class=EventSourceResponse,
    responses=_documented("DeploymentView"),
)
async def deployment_events(
    deployment_id: str, request: Request, _: Viewer, last_event_id: LastEventId = None
) -> EventSourceResponse:
    """The deployment's state as server-sent events: its body (as GET answers it) on
    connect and whenever it changes, then `end` once it has ended. One poller per deployment
    serves every watcher. 404 for an unknown id."""
    return await deployment_stream(request, deployment_id, last_event_id)


@router.get(
    "/api/v1/releases/{release_id}/events",
    response_class=EventSourceResponse,
    responses=_documented("ReleaseView"),
)
async def release_events(
    release_id: ReleaseId, request: Request, principal: Viewer, last_event_id: LastEventId = None
) -> EventSourceResponse:
    """The release's state as server-sent events, as for a deployment. 404 for an unknown
    id, or a release the caller may not read every component of."""
    return await release_stream(request, principal, release_id, last_event_id)
