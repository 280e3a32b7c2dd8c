"""What the OpenAPI document says about errors: one body schema, and the statuses of each route
derived from what the route is (authenticated, with a body, with path parameters) plus the
extras a route declares, so no route can leave a status it answers undocumented."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.routing import BaseRoute

from api.scope_checks import SCOPE_EXTENSION, kind_of
from core.models.apikeys import Role

ROLE_EXTENSION = "x-required-role"


class FieldError(BaseModel):
    """One invalid field: where it is in the request, and what is wrong with it."""

    field: str = Field(description="e.g. body.runtime.command or input.rounds")
    message: str


class ErrorDetail(BaseModel):
    """What went wrong and how to fix it."""

    type: str = Field(description="a stable name: NotFound, Conflict, ValidationError, ...")
    message: str
    hint: str | None = Field(None, description="what to do about it")
    fields: list[FieldError] | None = None
    details: dict[str, Any] | None = Field(None, description="data about the error, by name")
    request_id: str | None = Field(None, description="also in the X-Request-ID header")


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


DESCRIPTIONS = {
    400: "the request cannot be understood: unreadable body, or a token this API never gave",
    401: "no API key or OIDC token, or one that is not valid, expired or revoked (the message "
    "says which)",
    403: "the key's role is below the one this route needs, its target is out of the key's or "
    "token's scope (`x-scope`; the message names both), or an environment policy forbids the "
    "request (`details` names the policy and the rule)",
    404: "the resource named in the path does not exist",
    409: "the request clashes with the current state; the message says with what",
    412: "the If-Match header names a version that is no longer current: read it again",
    413: "the request body, or what it would store in Temporal, is over the size limit",
    422: "invalid fields, each named in `fields`",
    429: "too many failed key verifications, or Temporal is over a rate limit: see Retry-After",
    502: "a server behind the API (Temporal, the infrastructure) failed the request",
    503: "Temporal, the store or the OIDC issuer cannot be reached right now",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries with the error body for each status."""
    return {s: {"model": ErrorBody, "description": DESCRIPTIONS[s]} for s in statuses}


def required_role(route: APIRoute) -> Role | None:
    """The role the route's authentication dependency asks for; None for public routes."""

    def walk(dependant: Dependant) -> Role | None:
        role = getattr(dependant.call, "required_role", None)
        if isinstance(role, Role):
            return role
        for sub in dependant.dependencies:
            found = walk(sub)
            if found is not None:
                return found
        return None

    return walk(route.dependant)


def default_statuses(route: APIRoute) -> set[int]:
    """The statuses any route of this shape can answer, whatever its handler does."""
    statuses: set[int] = set()
    role = required_role(route)
    if role is not None:
        # Authentication reads the store; failed verifications are rate-limited.
        # Any route may be out of a scoped key's scope, viewer routes included (a key that
        # may not read everything): 403.
        statuses |= {401, 403, 429, 503}
    if route.body_field is not None:
        statuses |= {400, 413, 422}
    if route.dependant.path_params:
        statuses.add(404)
    if route.dependant.query_params or route.dependant.header_params or route.body_field:
        statuses.add(422)
    if route.dependant.path_params:
        statuses.add(422)
    return statuses


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute as declared, also inside included routers (whose effective copies FastAPI
    builds from these on first use, so changes made here before then reach them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


def document(app: FastAPI) -> None:
    """Add the error statuses and the required role to every route of the app; call it after
    the routers are included and before the app serves or builds its schema."""
    for route in api_routes(app.routes):
        extras = dict(route.responses)
        route.responses = {**errors(*sorted(default_statuses(route))), **extras}
        role = required_role(route)
        if role is not None:
            kind = kind_of(sorted(route.methods or {"GET"})[0], route.path)
            route.openapi_extra = {
                **(route.openapi_extra or {}),
                ROLE_EXTENSION: role.value,
                SCOPE_EXTENSION: kind,
            }
            note = f"Needs the `{role.value}` role."
            if note not in (route.description or ""):
                route.description = f"{route.description or ''}\n\n{note}".strip()
    app.openapi_schema = None
