"""The rules of component dependencies: a definition may not close a cycle nor name a component
that is not registered, a component others depend on is not removed, and a deployment does not
start while a dependency's serving version misses its constraint.

Used by the component service (definitions), deployment starts, and releases (which deploy
dependencies first, so they check the same rule per component).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import components as component_store
from core.db import deployments as deployment_store
from core.db.tables import ComponentRow
from core.dependency_graph import dependents, find_cycle
from core.errors import ConflictError, InvalidInputError
from core.models.components import ComponentSpec, DependencySpec


@dataclass(frozen=True)
class Serving:
    """What runs in a target, as the store knows it: the version of the newest revision (the
    last succeeded deployment) and the router endpoint that deployment reported."""

    version: str
    endpoint: str | None


async def serving(
    session: AsyncSession, component: str | None = None, environment: str | None = None
) -> dict[tuple[str, str], Serving]:
    """What runs in every target (of `component`, in `environment`, when given)."""
    revisions = await deployment_store.running_targets(session, component, environment)
    rows = await deployment_store.many(session, [r.deployment_id for r in revisions])
    endpoints = {row.id: (row.status or {}).get("endpoint") for row in rows}
    return {
        (r.component, r.environment): Serving(r.version, endpoints.get(r.deployment_id))
        for r in revisions
    }


def satisfies(version: str, constraint: str | None) -> tuple[bool, str | None]:
    """Whether `version` meets the PEP 440 `constraint` (None: any version does), and if not,
    why. A version that is not PEP 440 (`blue`) cannot be compared, so it does not."""
    if constraint is None:
        return True, None
    try:
        parsed = Version(version)
        specifiers = SpecifierSet(constraint)
    except InvalidVersion:
        return False, f"version {version!r} is not a PEP 440 version, so it cannot meet it"
    except InvalidSpecifier:  # validated on the way in; a stored one is still checked
        return False, f"constraint {constraint!r} is not a PEP 440 specifier set"
    if specifiers.contains(parsed, prereleases=True):
        return True, None
    return False, f"version {version} does not satisfy {constraint}"


def check_definition(spec: ComponentSpec, graph: Mapping[str, Sequence[str]]) -> None:
    """422 when the definition names a component that is not registered, or would close a
    cycle with the stored ones (`graph`, as core.db.components.graph reads it)."""
    unknown = sorted({d.component for d in spec.depends_on} - set(graph) - {spec.name})
    if unknown:
        message = f"depends on components that are not registered: {', '.join(unknown)}"
        raise InvalidInputError(
            message,
            hint="register each dependency first (POST /api/v1/components), then this one",
            fields=[{"field": "body.depends_on", "message": message}],
        )
    proposed = {**graph, spec.name: [d.component for d in spec.depends_on]}
    cycle = find_cycle(proposed)
    if cycle is not None:
        message = f"the dependencies would form a cycle: {' -> '.join(cycle)}"
        raise InvalidInputError(
            message,
            hint="a component may not depend on itself, directly or through others; "
            "remove one dependency of the cycle",
            fields=[{"field": "body.depends_on", "message": message}],
            cycle=cycle,
        )


def refuse_if_depended_on(name: str, graph: Mapping[str, Sequence[str]]) -> None:
    """409 when other components depend on `name`."""
    users = dependents(graph, name)
    if users:
        raise ConflictError(
            f"{', '.join(users)} depend on {name!r}",
            hint=f"remove {name!r} from their depends_on (PUT /api/v1/components/{{id}}) first",
            dependents=users,
        )


async def refuse_unsatisfied(
    session: AsyncSession, component: ComponentRow, environment: str, *, rollback: bool = False
) -> None:
    """409 when a dependency with a version constraint serves, in `environment`, a version
    that does not satisfy it. A dependency without a constraint, or not deployed there, does
    not stop the start (the graph shows it); nor does anything stop a rollback, which must
    always be possible."""
    if rollback:
        return
    for dependency in component_store.to_model(component).depends_on:
        problem = await unsatisfied(session, dependency, environment)
        if problem is not None:
            raise ConflictError(
                f"{component.name} needs {dependency.component} {dependency.version} in "
                f"{environment}: {problem}",
                hint=f"deploy a version of {dependency.component} that satisfies "
                f"{dependency.version} to {environment} first, or deploy both in a release "
                "(POST /api/v1/releases), which deploys dependencies first",
                dependency=dependency.component,
                constraint=dependency.version,
            )


async def unsatisfied(
    session: AsyncSession, dependency: DependencySpec, environment: str
) -> str | None:
    """Why the dependency's serving version in `environment` misses its constraint, or None
    (no constraint, not deployed there, or satisfied)."""
    if dependency.version is None:
        return None
    found = await serving(session, dependency.component, environment)
    running = found.get((dependency.component, environment))
    if running is None:
        return None
    ok, why = satisfies(running.version, dependency.version)
    return None if ok else f"{dependency.component} serves {running.version}: {why}"
