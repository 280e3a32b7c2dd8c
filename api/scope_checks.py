"""Scope checks: what each route is about, and whether a scoped key or token may touch it.

Every route has a target kind (`x-scope` in the OpenAPI document), found here from its method
and path, so the rule for each kind lives in one place:

- `global`: the API as a whole (keys, audit, events, ...): needs the role on every component
  and every environment (an unscoped grant). A route matching no rule below is global, the
  strictest kind, until it says otherwise.
- `component`, `component-environment`, `environment`: the target is in the path or the query
  (`component_id`/`component`, `environment`), checked by `require()` before the handler runs;
  a component given by id is looked up to its name.
- `deployment`, `schedule`: the target is the recorded one, looked up by id before the handler
  acts (an id that names nothing is left to the handler's 404).
- `body`: the target is in the request body; the handler calls `check` once it has it.
- `list`: the handler returns only what the caller may read (never 403).

Unscoped callers (every key made without scopes, every token of unscoped groups) skip all of
this: `Principal.grants is None`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from fastapi import Request
from sqlalchemy import ColumnElement, false, or_, true
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import components as component_store
from core.db import deployments as deployment_store
from core.db.tables import DeploymentRow
from core.errors import NotFoundError
from core.models.apikeys import Principal, Role
from core.models.deployments import DeploymentState
from core.models.scopes import ALL

SCOPE_EXTENSION = "x-scope"
Kind = Literal[
    "global",
    "component",
    "component-environment",
    "environment",
    "deployment",
    "schedule",
    "body",
    "list",
]

# (method or "*", path pattern, kind): the first match wins.
_RULES: list[tuple[str, str, Kind]] = [
    ("GET", "/api/v1/components", "list"),
    ("POST", "/api/v1/components", "body"),
    ("GET", "/api/v1/components/graph", "list"),
    ("*", "/api/v1/components/{component_id}/environments/{environment}", "component-environment"),
    ("*", "/api/v1/components/{component_id}*", "component"),
    ("GET", "/api/v1/deployments", "list"),
    ("POST", "/api/v1/deployments", "body"),
    ("GET", "/api/v1/deployments/revisions", "component-environment"),
    # Live updates (docs/live-updates.md): the stream of a deployment, as its GET.
    ("GET", "/api/v1/deployments/{deployment_id}/events", "deployment"),
    ("*", "/api/v1/deployments/{deployment_id}*", "deployment"),
    ("GET", "/api/v1/insights", "list"),
    # A replay names its deployment in the body; the handler checks the deployment's target.
    ("POST", "/api/v1/analysis/replay", "body"),
    ("GET", "/api/v1/policies", "list"),
    ("*", "/api/v1/policies/{environment}*", "environment"),
    ("GET", "/api/v1/configuration*", "component-environment"),
    ("DELETE", "/api/v1/configuration/{key}", "component-environment"),
    ("PUT", "/api/v1/configuration/{key}", "body"),
    ("POST", "/api/v1/configuration/{key}/rotate", "body"),
    ("GET", "/api/v1/schedules", "list"),
    ("POST", "/api/v1/schedules", "body"),
    ("*", "/api/v1/schedules/{schedule_id}*", "schedule"),
    ("POST", "/api/v1/orchestration/workflows", "body"),
    # A release names its components and environment in its body (checked, each of them, by
    # the handler); once made, one the caller may not read is answered 404, as if unlisted.
    ("POST", "/api/v1/releases", "body"),
    # The stream of a release, as its GET: 404 unless the caller may read all of it.
    ("GET", "/api/v1/releases/{release_id}/events", "list"),
    ("*", "/api/v1/releases*", "list"),
    # A pipeline spans environments, and its runs whatever components they name: global (the
    # handlers check each component x environment too).
    ("*", "/api/v1/pipelines*", "global"),
    # The switch halts automation everywhere: only an unscoped role reads or sets it.
    ("*", "/api/v1/stop-the-line", "global"),
]


def kind_of(method: str, path: str) -> Kind:
    """The target kind of the route at `path` (its template, e.g. /api/v1/x/{id})."""
    for rule_method, pattern, kind in _RULES:
        if rule_method not in ("*", method):
            continue
        if pattern.endswith("*"):
            if path == pattern[:-1] or path.startswith(pattern[:-1] + "/"):
                return kind
        elif path == pattern:
            return kind
    return "global"


def _writes(role: Role) -> bool:
    # A viewer route reads; operator and admin routes change something.
    return role is not Role.VIEWER


def check(principal: Principal, role: Role, component: str | None, environment: str | None) -> None:
    """403 (PermissionDeniedError, audited as reason `scope`) unless the caller may act with
    `role` on the component in the environment (None: all of them)."""
    principal.check_scope(role, component, environment, write=_writes(role))


def check_global(principal: Principal, role: Role) -> None:
    """A route about the API as a whole: the role must apply everywhere."""
    principal.check_scope(role, None, None, write=True)


def readable(principal: Principal) -> Callable[[str | None, str | None], bool]:
    """Whether the caller may read the component in the environment: for filtering lists."""
    return lambda component, environment: principal.may(
        Role.VIEWER, component, environment, write=False
    )


def readable_clause(principal: Principal, component: Any, environment: Any) -> ColumnElement[bool]:
    """The same as `readable`, as a SQL condition on a component and an environment column."""
    if principal.reads_everything:
        return true()
    clauses = []
    for grant in principal.grants or ():
        parts = []
        if ALL not in grant.components:
            parts.append(component.in_(grant.components))
        if ALL not in grant.environments:
            parts.append(environment.in_(grant.environments))
        clauses.append(
            true() if not parts else parts[0] if len(parts) == 1 else parts[0] & parts[1]
        )
    return or_(*clauses) if clauses else false()


async def enforce(request: Request, principal: Principal, role: Role) -> None:
    """The check of the route being served, for the kinds whose target the request names
    (called by `require()` once the role is known to suffice)."""
    if principal.grants is None:
        return
    route = request.scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    kind = kind_of(request.method, str(path or ""))
    if kind == "global":
        check_global(principal, role)
    elif kind in ("component", "component-environment", "environment"):
        params, query = request.path_params, request.query_params
        component = params.get("component_id") or query.get("component")
        environment = params.get("environment") or query.get("environment")
        if kind == "environment":
            component = None
        elif component is not None:
            component = await _component_name(request, component)
        if kind == "component":
            environment = None
        check(principal, role, component, environment)
    elif kind == "deployment":
        async with request.app.state.sessions() as session:
            row = await deployment_store.find(session, request.path_params["deployment_id"])
        if row is not None:
            check(principal, role, row.component, row.environment)
    elif kind == "schedule":
        target = await _schedule_target(request, request.path_params["schedule_id"])
        if target is None:
            check_global(principal, role)
        elif target is not False:
            check(principal, role, *target)
    # body and list: the handler checks or filters.


async def _component_name(request: Request, ref: str) -> str:
    # Scopes name components; a path may give the id. An unknown one stays as given (the
    # route answers 404 when the caller may see it, 403 when not).
    try:
        async with request.app.state.sessions() as session:
            return (await component_store.get_row(session, ref)).name
    except NotFoundError:
        return ref


async def _schedule_target(
    request: Request, name: str
) -> tuple[str | None, str | None] | None | Literal[False]:
    """The schedule's target (component, environment); None when it has none (global); False
    when there is no such schedule (the route answers 404)."""
    # Imported here: the schedule service reaches the deployment service, which filters its
    # lists with this module.
    from api.services.schedules import ScheduleService

    state = request.app.state
    async with state.sessions() as session:
        service = ScheduleService(session, state.gateway, state.settings)
        try:
            view = await service.get(name, runs=False)
        except NotFoundError:
            return False
    return target_of_input(view.input)


_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def target_of_input(value: dict[str, Any]) -> tuple[str | None, str | None] | None:
    """The (component, environment) a workflow input names, if it names a component: a
    deployment's or a retire's input does. None when it names none (a global target)."""
    component = value.get("component")
    if not isinstance(component, str) or not _NAME.fullmatch(component):
        return None
    environment = value.get("environment")
    return component, environment if isinstance(environment, str) else None


async def readable_page(
    session: AsyncSession,
    principal: Principal,
    *,
    component: str | None,
    environment: str | None,
    state: DeploymentState | None,
    limit: int,
    offset: int,
) -> tuple[list[DeploymentRow], int]:
    """`core.db.deployments.page` restricted to what the caller may read."""
    return await deployment_store.page(
        session,
        component=component,
        environment=environment,
        state=state,
        limit=limit,
        offset=offset,
        readable=readable_clause(principal, DeploymentRow.component, DeploymentRow.environment),
    )


def readable_target(principal: Principal, target: tuple[str | None, str | None] | None) -> bool:
    """Whether the caller may read a thing with this target (None: global, such as a
    schedule of a workflow that names no component)."""
    if target is None:
        return principal.reads_everything
    return principal.may(Role.VIEWER, target[0], target[1], write=False)


def check_input(principal: Principal, role: Role, value: dict[str, Any]) -> None:
    """The check of a workflow's (or a schedule's) input: its component and environment when
    it names a component, else the API as a whole."""
    if principal.grants is None:
        return
    target = target_of_input(value)
    if target is None:
        check_global(principal, role)
    else:
        check(principal, role, *target)
