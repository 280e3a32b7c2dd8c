"""Notifications out: subscriptions (who hears which events, in which format) and the record
of each delivery attempt; plus the contracts of the delivery workflow and its activities."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.models.names import ComponentName, EnvironmentName

# The names the worker registers (the workflow and its activities are called by name).
DELIVERY_WORKFLOW = "notification-delivery"
WAKE_SIGNAL = "wake"
PENDING_ACTIVITY = "notification-pending"
DELIVER_ACTIVITY = "deliver-notification"
GIVE_UP_ACTIVITY = "give-up-notification"
URL_REFUSED = "UrlRefused"  # the error type of a receiver the SSRF guard refuses: not retried

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
MAX_URL_LENGTH = 2048
MAX_FILTERS = 50


class EventType(StrEnum):
    """Every event a subscription may ask for (docs/notifications.md says when each is sent)."""

    DEPLOYMENT_STARTED = "deployment.started"
    DEPLOYMENT_PAUSED = "deployment.paused"
    DEPLOYMENT_AWAITING_APPROVAL = "deployment.awaiting_approval"
    DEPLOYMENT_PROMOTED = "deployment.promoted"
    DEPLOYMENT_SUCCEEDED = "deployment.succeeded"
    DEPLOYMENT_ROLLED_BACK = "deployment.rolled_back"
    DEPLOYMENT_ABORTED = "deployment.aborted"
    DEPLOYMENT_FAILED = "deployment.failed"
    SCHEDULE_SKIPPED = "schedule.skipped"
    COMPONENT_UNHEALTHY = "component.unhealthy"
    COMPONENT_RECOVERED = "component.recovered"


NotificationFormat = Literal["standard_webhooks", "slack"]
"""`standard_webhooks`: the event as JSON, signed (webhook-id, webhook-timestamp,
webhook-signature); `slack`: a Slack incoming-webhook body, `{"text": "..."}`."""


class SubscriptionSpec(BaseModel):
    """What an admin writes: where to send, which events, and for which targets."""

    model_config = _STRICT
    url: str = Field(
        ...,
        min_length=8,
        max_length=MAX_URL_LENGTH,
        description="http(s) URL the events are POSTed to; link-local and metadata addresses "
        "are refused (loopback and private ones only where R2C_NOTIFICATIONS_ALLOW_PRIVATE)",
    )
    event_types: list[EventType] = Field(..., min_length=1, max_length=len(EventType))
    components: list[ComponentName] = Field(
        default_factory=list, max_length=MAX_FILTERS, description="empty: every component"
    )
    environments: list[EnvironmentName] = Field(
        default_factory=list, max_length=MAX_FILTERS, description="empty: every environment"
    )
    format: NotificationFormat = "standard_webhooks"
    description: str = Field("", max_length=500)
    enabled: bool = True

    @field_validator("event_types", "components", "environments")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("an entry appears twice")
        return value


class Subscription(SubscriptionSpec):
    """A subscription as stored (its signing secret never appears here)."""

    id: str
    created_by: str
    created_at: datetime
    updated_at: datetime


class SubscriptionCreated(Subscription):
    """The answer to a creation: the signing secret, shown this once."""

    signing_secret: str | None = Field(
        None,
        description="`whsec_...`, to verify webhook-signature (standard_webhooks only); it is"
        " shown in this answer only",
    )


class SecretRotated(BaseModel):
    """A new signing secret, shown this once; the previous one still verifies until
    `previous_valid_until` (messages carry a signature by each)."""

    id: str
    signing_secret: str
    previous_valid_until: datetime


Outcome = Literal["delivered", "refused", "error"]


class DeliveryAttempt(BaseModel):
    """One POST to the receiver and what came back."""

    webhook_id: str = Field(description="the message's webhook-id, the same on every attempt")
    event_type: str
    event_id: str
    sequence: int
    attempt: int
    at: datetime
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = Field(None, description="the start of the receiver's answer")
    duration_ms: float


class DeliveryPage(BaseModel):
    """Newest attempts first."""

    items: list[DeliveryAttempt]
    total: int
    limit: int
    offset: int


# ----------------------------------------------------------------- workflow and activity contracts


class DeliveryWorkflowInput(BaseModel):
    subscription_id: str
    delivered: int = Field(0, description="messages finished in earlier runs (continue-as-new)")


class PendingRequest(BaseModel):
    subscription_id: str
    limit: int = Field(20, ge=1, le=100)


class PendingMessage(BaseModel):
    outbox_id: str
    sequence: int
    deliver_by: datetime = Field(description="after this the message is given up")


class PendingBatch(BaseModel):
    """The subscription's next messages in order, and how to retry them (from the worker's
    settings, so the workflow reads no settings)."""

    exists: bool
    messages: list[PendingMessage] = Field(default_factory=list)
    initial_interval_seconds: float = 1.0
    max_interval_seconds: float = 60.0
    idle_recheck_seconds: float = 300.0


class DeliverRequest(BaseModel):
    subscription_id: str
    outbox_id: str


class GiveUpRequest(BaseModel):
    subscription_id: str
    outbox_id: str
    reason: str = Field(..., max_length=500)


class NotificationStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
