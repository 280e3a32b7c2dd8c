"""Scopes: which components and environments a key's or a token's role applies to.

A `Grant` is a role over some components and some environments ("*" for all of them). A caller
with no grants (`Principal.grants is None`) is unscoped: its role applies everywhere, as every
key did before scopes. A target names a component, an environment, both, or neither: `None`
stands for "all of them" (an environment's policy is about every component in it; a
component's definition is about every environment).

A write needs a grant that covers the whole target: "*" where the target is `None`. A read of
something that spans components or environments needs a grant that touches it at all: a key
that may read `demo` in `staging` may read `demo`'s definition.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from core.models.names import COMPONENT_PATTERN, ENVIRONMENT_PATTERN
from core.models.roles import Role

ALL = "*"
MAX_NAMES = 50
MAX_GRANTS = 20


def _names(pattern: str, what: str) -> Any:
    import re

    compiled = re.compile(pattern)

    def check(values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if value != ALL and not compiled.fullmatch(value):
                raise ValueError(f"{value!r} is not a valid {what} name nor '*'")
        if ALL in values and len(values) > 1:
            raise ValueError(f"'*' already means every {what}: give it alone")
        return tuple(sorted(set(values)))

    return check


ComponentNames = Annotated[
    tuple[Annotated[str, Field(min_length=1, max_length=63)], ...],
    Field(min_length=1, max_length=MAX_NAMES),
    AfterValidator(_names(COMPONENT_PATTERN, "component")),
]
EnvironmentNames = Annotated[
    tuple[Annotated[str, Field(min_length=1, max_length=63)], ...],
    Field(min_length=1, max_length=MAX_NAMES),
    AfterValidator(_names(ENVIRONMENT_PATTERN, "environment")),
]


def _matches(names: tuple[str, ...], target: str | None, *, whole: bool) -> bool:
    if ALL in names:
        return True
    if target is None:  # every component (or environment): a write needs all of them
        return not whole
    return target in names


class Grant(BaseModel):
    """A role over some components and environments ("*": all of them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    components: ComponentNames = (ALL,)
    environments: EnvironmentNames = (ALL,)

    @property
    def unscoped(self) -> bool:
        return self.components == (ALL,) and self.environments == (ALL,)

    def covers(
        self, role: Role, component: str | None, environment: str | None, *, write: bool
    ) -> bool:
        """Whether this grant allows `role` on the target (None: all components, or all
        environments); a write needs the whole target, a read any part of it."""
        return (
            self.role.allows(role)
            and _matches(self.components, component, whole=write)
            and _matches(self.environments, environment, whole=write)
        )

    def label(self) -> str:
        comps = ",".join(self.components)
        envs = ",".join(self.environments)
        return f"{self.role.value} on components {comps} in environments {envs}"


Grants = Annotated[tuple[Grant, ...], Field(max_length=MAX_GRANTS)]


class ScopeSpec(BaseModel):
    """Part of a request to create a key: the key's role over these components and
    environments."""

    model_config = ConfigDict(extra="forbid")

    components: ComponentNames = Field(
        (ALL,), description="component names, or ['*'] for all (at most 50)"
    )
    environments: EnvironmentNames = Field(
        (ALL,), description="environment names, or ['*'] for all (at most 50)"
    )


def grants_for(
    role: Role, scopes: list[ScopeSpec] | None, *, read_everything: bool
) -> tuple[Grant, ...] | None:
    """A new key's grants: None (unscoped) without scopes; else its role over each scope,
    plus viewer on everything when it may read everything."""
    if scopes is None:
        return None
    grants = [
        Grant(role=role, components=s.components, environments=s.environments) for s in scopes
    ]
    if read_everything:
        grants.append(Grant(role=Role.VIEWER))
    return tuple(grants)


def describe(grants: tuple[Grant, ...] | None) -> str:
    """What a set of grants covers, for messages."""
    if grants is None:
        return "everything"
    if not grants:
        return "nothing"
    return "; ".join(g.label() for g in grants)
