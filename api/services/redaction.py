"""Environment values can carry credentials: below admin, callers see their names only."""

from __future__ import annotations

from core.models.apikeys import Principal, Role
from core.models.components import Component

REDACTED = "<redacted>"


def reads_secrets(principal: Principal) -> bool:
    return principal.role.allows(Role.ADMIN)


def env(values: dict[str, str], principal: Principal) -> dict[str, str]:
    """`values`, or the same names with every value replaced."""
    return dict(values) if reads_secrets(principal) else dict.fromkeys(values, REDACTED)


def component(value: Component, principal: Principal) -> Component:
    """The component as `principal` may see it."""
    if reads_secrets(principal):
        return value
    runtime = value.runtime.model_copy(update={"env": env(value.runtime.env, principal)})
    return value.model_copy(update={"runtime": runtime})
