"""API keys, roles and the identity of a caller."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from core.models.durations import parse_duration


class Role(StrEnum):
    """Roles in increasing power; each includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class Principal(BaseModel):
    """Who is calling: the identity that travels with every workflow and action."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    name: str
    role: Role

    @property
    def initiator(self) -> str:
        return f"apikey:{self.name}"


# A key lives at most ten years; a rotated key's grace is at most a week (long enough to roll
# the new secret out everywhere, short enough that a leaked old one soon stops).
MAX_KEY_LIFETIME_SECONDS = 3650 * 86400
MAX_ROTATION_GRACE_SECONDS = 7 * 86400

KeyLifetime = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(ge=1, le=MAX_KEY_LIFETIME_SECONDS, allow_inf_nan=False),
]
"""How long a new key works, 1 s to 3650 days, written as text ("30d", "12h") or seconds."""

RotationGrace = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(ge=0, le=MAX_ROTATION_GRACE_SECONDS, allow_inf_nan=False),
]
"""How long a rotated key keeps working, 0 to 7 days, written as text ("1h") or seconds."""


class ApiKeyCreate(BaseModel):
    """Request to create a key."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
    role: Role = Role.VIEWER
    expires_in: KeyLifetime | None = Field(
        None, description="the key stops working this long after its creation (1s..3650d)"
    )


class ApiKeyRotate(BaseModel):
    """Request to rotate a key: a new secret now, the old one ends after `grace`."""

    model_config = ConfigDict(extra="forbid")

    grace: RotationGrace = Field(
        3600, description="how long the old key keeps working (0s..7d); default 1h"
    )
    expires_in: KeyLifetime | None = Field(
        None,
        description="lifetime of the new key (1s..3650d); default: the old key's lifetime",
    )


class ApiKeyInfo(BaseModel):
    """A key as listed: never the key itself."""

    id: str
    name: str
    role: Role
    prefix: str = Field(description="the first characters of the key, to recognise it")
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None
    expires_at: datetime | None = Field(None, description="when the key stops working")
    last_used_at: datetime | None = Field(
        None, description="last successful use, recorded at most once a minute per API process"
    )
    rotated_at: datetime | None = Field(None, description="when the key was rotated")
    replaced_by: str | None = Field(None, description="id of the key that replaced this one")
    grace_until: datetime | None = Field(
        None, description="a rotated key works until then, and no longer"
    )


class ApiKeyCreated(ApiKeyInfo):
    """The answer to a create: the only time the plain key is shown."""

    key: str


class ApiKeyRotated(ApiKeyCreated):
    """The answer to a rotate: the new key (shown this once) and the one it replaces."""

    replaces: str = Field(description="id of the old key")
    old_key_works_until: datetime = Field(description="when the old key stops working")
