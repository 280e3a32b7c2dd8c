"""`/api/v1/notifications`: subscriptions to the system's events, delivered as signed Standard
Webhooks or Slack messages by the worker (admins manage them; docs/notifications.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from api.auth import Admin, Operator
from api.deps import GatewayDep, SessionDep
from api.openapi import errors
from api.services.notifications import NotificationService
from core.models.notifications import (
    DeliveryPage,
    SecretRotated,
    Subscription,
    SubscriptionCreated,
    SubscriptionSpec,
)

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


async def _service(
    request: Request, session: SessionDep, gateway: GatewayDep
) -> NotificationService:
    return NotificationService(session, gateway, getattr(request.app.state, "secrets", None))


NotificationsDep = Annotated[NotificationService, Depends(_service)]
SubscriptionId = Annotated[
    str, Path(max_length=40, pattern=r"^ns_[0-9a-f]{1,32}$", description="the subscription")
]


@router.post(
    "",
    response_model=SubscriptionCreated,
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 503),
)
async def create_subscription(
    spec: SubscriptionSpec, principal: Admin, service: NotificationsDep
) -> SubscriptionCreated:
    """Subscribe a URL to events. A standard_webhooks subscription's signing secret
    (`whsec_...`) is in this answer only: keep it to verify webhook-signature."""
    return await service.create(principal, spec)


@router.get("", response_model=list[Subscription])
async def list_subscriptions(_: Admin, service: NotificationsDep) -> list[Subscription]:
    """Every subscription, oldest first (never their secrets)."""
    return await service.all()


@router.get("/{subscription_id}", response_model=Subscription)
async def get_subscription(
    subscription_id: SubscriptionId, _: Admin, service: NotificationsDep
) -> Subscription:
    return await service.get(subscription_id)


@router.put("/{subscription_id}", response_model=Subscription)
async def update_subscription(
    subscription_id: SubscriptionId,
    spec: SubscriptionSpec,
    principal: Admin,
    service: NotificationsDep,
) -> Subscription:
    """Replace the URL, event types, filters, description or `enabled`; the format stays."""
    return await service.update(principal, subscription_id, spec)


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_subscription(
    subscription_id: SubscriptionId, principal: Admin, service: NotificationsDep
) -> Response:
    """Stop notifying: the subscription and its undelivered messages go."""
    await service.delete(principal, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{subscription_id}/rotate-secret", response_model=SecretRotated, responses=errors(503)
)
async def rotate_secret(
    subscription_id: SubscriptionId, principal: Admin, service: NotificationsDep
) -> SecretRotated:
    """A new signing secret, shown in this answer only. For 24 hours each message is signed
    with the new and the previous secret (two signatures in webhook-signature), so a receiver
    may switch at any time in that window."""
    return await service.rotate_secret(principal, subscription_id)


@router.get("/{subscription_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    subscription_id: SubscriptionId,
    _: Operator,
    service: NotificationsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DeliveryPage:
    """Every attempt to deliver the subscription's messages, newest first: status code, the
    start of the answer, the error, how long it took."""
    return await service.deliveries(subscription_id, limit, offset)
