"""Configuration entries: a key with a JSON value at a scope (global, an environment, a
component, or a component in an environment), versioned, with secrets kept in Vault.

Keys become environment variable names of a component's instances, so they are lower-case
dotted segments (`db.pool_size`), validated here once.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
)

from core.configuration_env import key_problem
from core.models.names import ComponentName, EnvironmentName

KEY_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$"
KEY_MAX_LENGTH = 128
MAX_VALUE_BYTES = 64 * 1024
MAX_DESCRIPTION = 1000
MAX_KEYS_PER_SCOPE = 1000


def _usable_as_variable(key: str) -> str:
    # A key becomes an instance's environment variable (core/configuration_env.py): one that
    # would set PATH, LD_PRELOAD or the system's own R2C_* is refused when it is written.
    problem = key_problem(key)
    if problem:
        raise ValueError(problem)
    return key


ConfigKey = Annotated[
    str,
    StringConstraints(pattern=KEY_PATTERN, min_length=1, max_length=KEY_MAX_LENGTH),
    AfterValidator(_usable_as_variable),
]
"""`db.pool_size`: lower-case segments of letters, digits and `_`, joined by dots, whose
variable (`DB_POOL_SIZE`) an instance may be given."""


def encoded_size(value: Any) -> int:
    """Bytes of `value` as compact JSON: what the store keeps and the size limit counts."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _within_size_limit(value: JsonValue) -> JsonValue:
    size = encoded_size(value)
    if size > MAX_VALUE_BYTES:
        raise ValueError(
            f"the value is {size} bytes as JSON; at most {MAX_VALUE_BYTES} are allowed"
        )
    return value


ConfigValue = Annotated[JsonValue, AfterValidator(_within_size_limit)]
"""Any JSON value of at most MAX_VALUE_BYTES as compact JSON."""


def secret_placeholder(version: int) -> str:
    """What every answer shows instead of a secret value."""
    return f"<secret v{version}>"


class Scope(BaseModel):
    """Where an entry applies: nothing given is global."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    component: ComponentName | None = None
    environment: EnvironmentName | None = None

    def label(self) -> str:
        """`component/environment` with `_` for what is not given (names never hold `_`)."""
        return f"{self.component or '_'}/{self.environment or '_'}"


class ConfigWrite(BaseModel):
    """The body of `PUT /api/v1/configuration/{key}`."""

    model_config = ConfigDict(extra="forbid")

    value: ConfigValue = Field(
        ..., description=f"any JSON value, at most {MAX_VALUE_BYTES} bytes encoded"
    )
    scope: Scope = Field(default_factory=Scope, description="empty: global")
    secret: bool = Field(
        False, description="kept in Vault; answers show `<secret vN>`, never the value"
    )
    description: str = Field("", max_length=MAX_DESCRIPTION)


class SecretRef(BaseModel):
    """Where a secret value lives: a path in the KV v2 mount and its Vault version."""

    path: str
    vault_version: int


class ResolvedEntry(BaseModel):
    """One entry of an effective set, for code that hands configuration on: secrets are
    references, never values."""

    key: str
    value: JsonValue = None
    secret: SecretRef | None = None
    source: Scope
    version: int
    revision: int


class ConfigEntry(BaseModel):
    """An entry as the API shows it: its value (or `<secret vN>`) and where it came from."""

    key: str
    value: JsonValue
    secret: bool
    description: str
    source: Scope = Field(description="the scope the value came from")
    version: int = Field(description="version of the entry at its source scope")
    revision: int = Field(description="configuration revision that wrote this version")
    updated_at: datetime
    updated_by: str


class EffectiveConfiguration(BaseModel):
    """Every key that applies to a target, each resolved at its most specific scope."""

    scope: Scope
    revision: int = Field(description="newest configuration revision that affects the target")
    entries: list[ConfigEntry]


class VersionAction(StrEnum):
    SET = "set"
    DELETED = "deleted"


class DiffOp(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


class DiffLine(BaseModel):
    """One difference from the previous version; a secret's lines carry no values."""

    path: str = Field(description="JSON path inside the value, `$` for the whole value")
    op: DiffOp
    before: JsonValue = None
    after: JsonValue = None


class ConfigVersion(BaseModel):
    """One version of an entry: who made it, when, and what changed."""

    key: str
    scope: Scope
    version: int
    revision: int
    action: VersionAction
    secret: bool
    description: str
    at: datetime
    by: str
    diff: list[DiffLine]
