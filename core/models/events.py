"""Events in: CloudEvents 1.0, the webhook sources that turn signed deliveries into events,
the routes that turn events into workflow starts or deployment actions, and what the store
keeps of every event received (docs/events.md)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from core.models.apikeys import Principal

SPEC_VERSION = "1.0"
MAX_EXTENSIONS = 32
MAX_EXTENSION_CHARS = 1024
STORED_DATA_BYTES = 64 * 1024
MAX_TEMPLATE_BYTES = 16 * 1024
MAX_DATA_CONDITIONS = 20
MAX_ROUTES = 200
MAX_EXPRESSION_CHARS = 2000

# Printable ASCII without spaces: ids and types end up in workflow ids, logs and URLs.
_PRINTABLE = r"^[!-~]+$"
# Text the store keeps in string columns: PostgreSQL refuses NUL in them.
_ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
_NO_NUL = r"^[^\x00]*$"
EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
# The attributes CloudEvents 1.0 defines; any other top-level member is an extension.
CONTEXT_ATTRIBUTES = frozenset(
    {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema"}
)

EventId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_PRINTABLE)]
EventSource = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=_PRINTABLE)]
EventType = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_PRINTABLE)]
RouteName = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$", min_length=2, max_length=63)
]
SourceName = RouteName
GlobPattern = Annotated[str, StringConstraints(min_length=1, max_length=512)]
DottedPath = Annotated[
    str,
    StringConstraints(
        pattern=r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,15}$", max_length=512
    ),
]
ExtensionValue = str | int | bool


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event, whichever HTTP mode brought it; extensions apart."""

    model_config = ConfigDict(extra="forbid")

    specversion: Literal["1.0"]
    id: EventId
    source: EventSource
    type: EventType
    subject: (
        Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=_ONE_LINE)] | None
    ) = None
    time: AwareDatetime | None = None
    datacontenttype: Annotated[str, StringConstraints(max_length=128, pattern=_ONE_LINE)] | None = (
        None
    )
    dataschema: Annotated[str, StringConstraints(max_length=512, pattern=_ONE_LINE)] | None = None
    data: Any = None
    data_base64: str | None = None
    extensions: dict[str, ExtensionValue] = Field(default_factory=dict)

    @field_validator("extensions")
    @classmethod
    def _bounded_extensions(cls, value: dict[str, ExtensionValue]) -> dict[str, ExtensionValue]:
        if len(value) > MAX_EXTENSIONS:
            raise ValueError(f"{len(value)} extension attributes; at most {MAX_EXTENSIONS}")
        for name, item in value.items():
            if not EXTENSION_NAME.match(name):
                raise ValueError(
                    f"{name!r} is not an attribute name: lower-case letters and digits, 1-20"
                )
            if isinstance(item, str) and len(item) > MAX_EXTENSION_CHARS:
                raise ValueError(f"extension {name} is over {MAX_EXTENSION_CHARS} characters")
            if isinstance(item, str) and "\x00" in item:
                raise ValueError(f"extension {name} holds a NUL character")
        return value


# ----------------------------------------------------------------------------- routes


class RouteMatch(BaseModel):
    """What an event must look like for the route to act. Every condition given must hold:
    `type`, `source` and `subject` are glob patterns (`*`, `?`, `[...]`); `data` maps dotted
    paths into the event's data to a value it must equal (a string with `*`, `?` or `[` is a
    glob); `expression` is a CEL expression over the event (id, source, type, subject, time,
    datacontenttype, data, extensions) that must answer true."""

    model_config = ConfigDict(extra="forbid")

    type: GlobPattern | None = None
    source: GlobPattern | None = None
    subject: GlobPattern | None = None
    data: dict[DottedPath, str | int | float | bool | None] = Field(default_factory=dict)
    expression: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_EXPRESSION_CHARS)] | None
    ) = None

    @field_validator("data")
    @classmethod
    def _few_conditions(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_DATA_CONDITIONS:
            raise ValueError(f"{len(value)} data conditions; at most {MAX_DATA_CONDITIONS}")
        return value


class StartAction(BaseModel):
    """Start a workflow of `workflow_type` with `input`: a template whose strings may hold
    `${data.path}` placeholders (or `${id}`, `${source}`, `${type}`, `${subject}`, `${time}`,
    `${extensions.name}`). A string that is only one placeholder takes the value's own type."""

    model_config = ConfigDict(extra="forbid")

    workflow_type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    input: dict[str, Any] = Field(default_factory=dict)

    @field_validator("input")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, separators=(",", ":")))
        if size > MAX_TEMPLATE_BYTES:
            raise ValueError(f"the input template is {size} bytes; at most {MAX_TEMPLATE_BYTES}")
        return value


SignalName = Literal["promote", "pause", "resume", "abort"]


class SignalAction(BaseModel):
    """Steer a running deployment: the one named by `deployment`, or the one running on
    (`component`, `environment`); each may be a template. `approve` is refused: an approval
    is a person's judgement, recorded under their name, and a route would let whoever can
    send the event approve in its creator's name."""

    model_config = ConfigDict(extra="forbid")

    signal: SignalName
    deployment: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    component: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    environment: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    full: bool = Field(False, description="promote: skip every remaining step")
    reason: Annotated[str, StringConstraints(max_length=500, pattern=_NO_NUL)] = ""

    @field_validator("signal", mode="before")
    @classmethod
    def _no_approvals(cls, value: Any) -> Any:
        if value == "approve":
            raise ValueError(
                "routes cannot approve: an approval is a person's decision under their own "
                "name; approve with POST /api/v1/deployments/{id}/approve"
            )
        return value

    @model_validator(mode="after")
    def _one_target(self) -> SignalAction:
        by_target = self.component is not None or self.environment is not None
        if self.deployment is not None and by_target:
            raise ValueError("name the deployment, or its component and environment, not both")
        if self.deployment is None and (self.component is None or self.environment is None):
            raise ValueError("name the deployment, or both its component and environment")
        return self


class EventRouteSpec(BaseModel):
    """A route: when an event matches, start a workflow or signal a deployment."""

    model_config = ConfigDict(extra="forbid")

    description: Annotated[str, StringConstraints(max_length=500, pattern=_NO_NUL)] = ""
    enabled: bool = True
    match: RouteMatch
    start: StartAction | None = None
    signal: SignalAction | None = None

    @model_validator(mode="after")
    def _one_action(self) -> EventRouteSpec:
        if (self.start is None) == (self.signal is None):
            raise ValueError("give exactly one action: `start` or `signal`")
        return self


class EventRouteCreate(EventRouteSpec):
    """A new route, with its name."""

    name: RouteName


class EventRoute(EventRouteSpec):
    """A route as stored: acting with the role of whoever last wrote it."""

    name: str
    version: int
    role: str = Field(description="the role of its last writer: what its actions may do")
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


# ----------------------------------------------------------------------------- sources

WebhookKind = Literal["github", "hmac"]


class WebhookSourceCreate(BaseModel):
    """A sender of signed webhooks. `github`: GitHub's X-Hub-Signature-256, X-GitHub-Delivery
    and X-GitHub-Event headers, event type `com.github.<event>`. `hmac`: any sender that signs
    the raw body with HMAC-SHA256 in `X-Signature-256: sha256=<hex>` and names each delivery
    in `X-Delivery-Id`; event type `event_type`. The secret is write-only: it goes to Vault."""

    model_config = ConfigDict(extra="forbid")

    name: SourceName
    kind: WebhookKind
    secret: SecretStr = Field(..., min_length=16, max_length=512)
    event_type: EventType | None = Field(
        None, description="hmac: the type of its events (default com.r2c.webhook.<name>)"
    )
    description: Annotated[str, StringConstraints(max_length=500, pattern=_NO_NUL)] = ""

    @model_validator(mode="after")
    def _type_for_kind(self) -> WebhookSourceCreate:
        if self.kind == "github" and self.event_type is not None:
            raise ValueError("a github source's event type is com.github.<X-GitHub-Event>")
        return self


class WebhookSecretRotation(BaseModel):
    """A new secret; deliveries signed with the old one are refused from then on."""

    model_config = ConfigDict(extra="forbid")

    secret: SecretStr = Field(..., min_length=16, max_length=512)


class WebhookSource(BaseModel):
    """A source as shown: never its secret, only which Vault version holds it."""

    name: str
    kind: WebhookKind
    event_type: str
    description: str
    url: str = Field(description="where the sender delivers")
    secret_version: int
    created_by: str
    created_at: datetime
    rotated_at: datetime | None = None


# ----------------------------------------------------------------------------- records

OutcomeResult = Literal["started", "existing", "signalled", "error"]


class RouteOutcome(BaseModel):
    """What one matching route did with the event."""

    route: str
    result: OutcomeResult
    workflow_id: str | None = None
    deployment_id: str | None = None
    message: str | None = None
    retryable: bool = Field(
        False,
        description="a start that failed because Temporal or the store was unreachable: the "
        "answer was 503, and a repeat of the event tries it again",
    )


class EventRecord(BaseModel):
    """An event as received and kept: what it matched and what it started."""

    id: int
    event_id: str
    source: str
    type: str
    subject: str | None = None
    time: datetime | None = None
    received_at: datetime
    via: str = Field(description="`api` (POST /api/v1/events) or `webhook:<source>`")
    received_by: str
    datacontenttype: str | None = None
    extensions: dict[str, ExtensionValue] = Field(default_factory=dict)
    data: Any = None
    data_truncated: bool = Field(
        False, description=f"data over {STORED_DATA_BYTES} bytes is not kept (routes saw it)"
    )
    matched: list[str] = Field(default_factory=list, description="routes that matched")
    outcomes: list[RouteOutcome] = Field(default_factory=list)
    duplicate: bool = Field(
        False, description="this answer is to a repeat of an event already received"
    )


class EventPage(BaseModel):
    """Events, newest first; `next_before` fetches the next (older) page."""

    items: list[EventRecord]
    next_before: int | None = None


class ActorPrincipal(Principal):
    """Who acts without an API key: a route (`route:<name>`, with its writer's role) or a
    webhook source (`webhook:<name>`, which only records what it delivered)."""

    kind: Literal["route", "webhook"]

    @property
    def initiator(self) -> str:
        return f"{self.kind}:{self.name}"
