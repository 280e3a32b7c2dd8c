"""`/api/v1/webhooks/{source}` (signed deliveries, no API key) and `/api/v1/webhook-sources`
(admins configure the senders and their secrets); docs/events.md."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, status
from sqlalchemy.ext.asyncio import async_sessionmaker

from api.auth import Admin, Viewer
from api.deps import GatewayDep, SessionDep, SettingsDep
from api.openapi import errors
from api.services.events import EventService, unavailable_if_retryable
from api.services.webhooks import WebhookSourceService, source_principal
from core.errors import PayloadTooLargeError
from core.models.events import (
    EventRecord,
    SourceName,
    WebhookSecretRotation,
    WebhookSource,
    WebhookSourceCreate,
)
from core.secrets import SecretStore

router = APIRouter(tags=["events"])


async def _sources(request: Request, session: SessionDep) -> WebhookSourceService:
    secrets: SecretStore = request.app.state.secrets
    return WebhookSourceService(session, secrets, request.scope.get("root_path", ""))


SourcesDep = Annotated[WebhookSourceService, Depends(_sources)]
SourcePath = Annotated[SourceName, Path(description="the webhook source's name")]
# Vault answers for the secret: 503 when it cannot be reached, 502 when it refuses.
_VAULT = errors(502, 503)

_DELIVERY = errors(400, 401, 413, 502, 503)
_DELIVERY[200] = {"model": EventRecord, "description": "a delivery already received (same"
                  " delivery id): answered, not acted on again"}  # fmt: skip


@router.post(
    "/api/v1/webhooks/{source}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventRecord,
    responses=_DELIVERY,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def deliver(
    source: SourcePath,
    request: Request,
    response: Response,
    settings: SettingsDep,
    gateway: GatewayDep,
) -> EventRecord:
    """A signed delivery from a webhook source: no API key, the signature over the raw body
    is the credential (GitHub: X-Hub-Signature-256, X-GitHub-Delivery, X-GitHub-Event;
    `hmac`: X-Signature-256: sha256=<hex>, X-Delivery-Id). 401 for a missing or wrong
    signature, and nothing is kept or started; a repeated delivery id answers 200 and acts
    on nothing. It becomes the event `com.github.<event>` (or the source's type) from
    `/webhooks/<source>`, routed like any other."""
    body = await request.body()
    if len(body) > settings.event_max_bytes:
        raise PayloadTooLargeError(
            f"the delivery is {len(body)} bytes; at most {settings.event_max_bytes}",
            hint="R2C_EVENT_MAX_BYTES sets the limit",
        )
    sessions: async_sessionmaker[Any] = request.app.state.sessions
    # Its own short session: the request holds no connection while the routes act.
    async with sessions() as session:
        sources = WebhookSourceService(session, request.app.state.secrets)
        event = await sources.verify(source, request.headers, body)
    events = EventService(sessions, gateway, settings)
    kept, created = await events.receive(event, source_principal(source), f"webhook:{source}")
    unavailable_if_retryable(kept)
    if not created:
        response.status_code = status.HTTP_200_OK
    return kept


@router.get("/api/v1/webhook-sources", response_model=list[WebhookSource])
async def list_sources(_: Viewer, service: SourcesDep) -> list[WebhookSource]:
    """Every webhook source (never a secret)."""
    return await service.all()


@router.post(
    "/api/v1/webhook-sources",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookSource,
    responses={**errors(409), **_VAULT},
)
async def create_source(
    body: WebhookSourceCreate, principal: Admin, service: SourcesDep
) -> WebhookSource:
    """Create a source; its secret goes to Vault and is never shown again."""
    return await service.create(principal, body)


@router.get("/api/v1/webhook-sources/{name}", response_model=WebhookSource)
async def get_source(name: SourcePath, _: Viewer, service: SourcesDep) -> WebhookSource:
    """One source (never its secret)."""
    return await service.get(name)


@router.post(
    "/api/v1/webhook-sources/{name}/rotate", response_model=WebhookSource, responses=_VAULT
)
async def rotate_source(
    name: SourcePath, body: WebhookSecretRotation, principal: Admin, service: SourcesDep
) -> WebhookSource:
    """Give the source a new secret: deliveries signed with the old one are refused now."""
    return await service.rotate(principal, name, body)


@router.delete(
    "/api/v1/webhook-sources/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=_VAULT
)
async def delete_source(name: SourcePath, principal: Admin, service: SourcesDep) -> Response:
    """Delete the source: its deliveries are 404 from now on."""
    await service.delete(principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
