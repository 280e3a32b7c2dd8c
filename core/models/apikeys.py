"""API keys, roles and the identity of a caller."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


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


class ApiKeyCreate(BaseModel):
    """Request to create a key."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
    role: Role = Role.VIEWER


class ApiKeyInfo(BaseModel):
    """A key as listed: never the key itself."""

    id: str
    name: str
    role: Role
    prefix: str = Field(description="the first characters of the key, to recognise it")
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyInfo):
    """The answer to a create: the only time the plain key is shown."""

    key: str
