"""API keys, roles and the identity of a caller."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from core.errors import PermissionDeniedError
from core.models.durations import parse_duration
from core.models.roles import Role as Role
from core.models.scopes import MAX_GRANTS, Grant, Grants, ScopeSpec, describe


class Principal(BaseModel):
    """Who is calling: the identity that travels with every workflow and action."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    name: str
    role: Role
    grants: Grants | None = Field(
        None, description="None: the role applies to every component and environment"
    )

    @property
    def initiator(self) -> str:
        return f"apikey:{self.name}"

    @property
    def reads_everything(self) -> bool:
        """Whether every component and environment can be read (no list needs filtering)."""
        return self.grants is None or any(g.unscoped for g in self.grants)

    def may(
        self, role: Role, component: str | None, environment: str | None, *, write: bool
    ) -> bool:
        """Whether the caller may act with `role` on the target (None: all components, or
        all environments; see core/models/scopes.py)."""
        if not self.role.allows(role):
            return False
        if self.grants is None:
            return True
        return any(g.covers(role, component, environment, write=write) for g in self.grants)

    def check_scope(
        self,
        role: Role,
        component: str | None = None,
        environment: str | None = None,
        *,
        write: bool,
    ) -> None:
        """Raise PermissionDeniedError (403) unless `may` allows the target."""
        if self.may(role, component, environment, write=write):
            return
        target = f"component {component or '* (all)'} in environment {environment or '* (all)'}"
        raise PermissionDeniedError(
            f"{target} is out of the scope of {self.initiator} for the "
            f"{role.value} role; it covers: {describe(self.grants)}",
            hint="ask an admin for a key scoped to it (`r2c apikey create --component ... "
            "--environment ...`), or a group mapped to it in R2C_OIDC_ROLE_MAP",
            reason="scope",
            needed_role=role.value,
        )


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
    scopes: list[ScopeSpec] | None = Field(
        None,
        min_length=1,
        max_length=MAX_GRANTS - 1,
        description="the components and environments the key's role applies to (each scope: "
        "components x environments); none: every component and environment",
    )
    read_everything: bool = Field(
        True,
        description="with scopes: the key may still read everything, as a viewer (false: it "
        "reads only its scopes)",
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
    grants: list[Grant] | None = Field(
        None, description="what the key's role applies to; none: every component and environment"
    )
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
