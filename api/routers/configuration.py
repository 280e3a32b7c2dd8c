"""`/api/v1/configuration`: configuration entries at scopes, their versions and ETags."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status

from api.auth import Operator, Viewer
from api.deps import GatewayDep, SessionDep, SettingsDep
from api.openapi import errors
from api.scope_checks import check
from api.services.config_rollouts import RolloutService
from api.services.configuration import ConfigurationService
from api.services.configuration_views import etag
from core.models.apikeys import Role
from core.models.config_rollouts import ConfigChange, RolledOutEntry, Rotation
from core.models.configuration import (
    KEY_MAX_LENGTH,
    KEY_PATTERN,
    ConfigEntry,
    ConfigKey,
    ConfigVersion,
    ConfigWrite,
    EffectiveConfiguration,
    Scope,
)
from core.models.names import ComponentName, EnvironmentName

router = APIRouter(prefix="/api/v1/configuration", tags=["configuration"])


async def _service(request: Request, session: SessionDep) -> ConfigurationService:
    return ConfigurationService(session, getattr(request.app.state, "secrets", None))


async def _rollouts(
    session: SessionDep, gateway: GatewayDep, settings: SettingsDep
) -> RolloutService:
    return RolloutService(session, gateway, settings)


ConfigurationDep = Annotated[ConfigurationService, Depends(_service)]
RolloutsDep = Annotated[RolloutService, Depends(_rollouts)]
Key = Annotated[
    str,
    Path(
        pattern=KEY_PATTERN,
        min_length=1,
        max_length=KEY_MAX_LENGTH,
        description="lower-case segments of letters, digits and _ joined by dots: db.pool_size",
    ),
]
# Writing also refuses keys whose variable an instance may not be given (PATH, R2C_*, ...);
# reading and deleting accept them, so an entry stored before that check can be removed.
WritableKey = Annotated[
    ConfigKey,
    Path(
        description="db.pool_size (the variable DB_POOL_SIZE); not a key whose variable is"
        " denied (PATH, LD_*, R2C_*: see DENIED_ENV_NAMES)"
    ),
]
ComponentQuery = Annotated[ComponentName | None, Query(description="a registered component")]
EnvironmentQuery = Annotated[EnvironmentName | None, Query()]
IfMatch = Annotated[
    str | None,
    Header(max_length=1024, description="the ETag last read: the change fails (412) if stale"),
]
Override = Annotated[
    bool,
    Query(
        description="admins only: pass an environment policy's freeze or need for approval "
        "(recorded as an audit event)"
    ),
]
ETAG_HEADER = {"ETag": {"description": "the entry's version", "schema": {"type": "string"}}}
WRITTEN: dict[int | str, dict[str, Any]] = {
    200: {"description": "a new version of an existing entry", "headers": ETAG_HEADER},
    201: {"model": ConfigEntry, "description": "the entry was created", "headers": ETAG_HEADER},
}


@router.get("", response_model=EffectiveConfiguration, responses=errors(404))
async def effective_configuration(
    _: Viewer,
    service: ConfigurationDep,
    component: ComponentQuery = None,
    environment: EnvironmentQuery = None,
) -> EffectiveConfiguration:
    """Every key that applies to the target, each at its most specific scope
    (component+environment > component > environment > global); secrets as `<secret vN>`."""
    return await service.effective(Scope(component=component, environment=environment))


@router.get(
    "/{key}",
    response_model=ConfigEntry,
    responses={200: {"headers": ETAG_HEADER}},
)
async def get_entry(
    key: Key,
    _: Viewer,
    service: ConfigurationDep,
    response: Response,
    component: ComponentQuery = None,
    environment: EnvironmentQuery = None,
    version: Annotated[
        int | None,
        Query(ge=1, le=2**31 - 1, description="this version of the entry at exactly the scope"),
    ] = None,
) -> ConfigEntry:
    """The value of `key` for the target and the scope it came from; with `version`, that
    version of the entry at exactly the given scope."""
    scope = Scope(component=component, environment=environment)
    current, newest = await service.get(key, scope, version)
    if newest:
        response.headers["ETag"] = etag(current)
    return service.entry(current)


@router.put("/{key}", response_model=RolledOutEntry, responses={**WRITTEN, **errors(409, 412)})
async def put_entry(
    key: WritableKey,
    body: ConfigChange,
    principal: Operator,
    service: ConfigurationDep,
    rollouts: RolloutsDep,
    response: Response,
    if_match: IfMatch = None,
    freeze_override: Override = False,
) -> RolledOutEntry:
    """Set `key` at a scope (201 when new, 200 otherwise) as a new version. With `If-Match`,
    a writer that did not see the newest version gets 412 instead of overwriting it. A change
    that breaks a component's `config_schema` is refused (422 naming key, path and rule).
    With `roll_out`, every running target the scope reaches then gets a deployment of the
    version it runs with the change's revision (`rollouts`: the deployment started, or why
    none could, such as 409 when one already runs there)."""
    check(principal, Role.OPERATOR, body.scope.component, body.scope.environment)
    write = ConfigWrite.model_validate(body.model_dump(exclude={"roll_out"}))
    rolled_out = body.roll_out is not None
    current, created = await service.put(
        principal, key, write, if_match, freeze_override, rolled_out=rolled_out
    )
    response.headers["ETag"] = etag(current)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return await rollouts.answer(principal, key, current, body.roll_out)


@router.post("/{key}/rotate", response_model=RolledOutEntry, responses=errors(404, 409, 412))
async def rotate_secret(
    key: Key,
    body: Rotation,
    principal: Operator,
    service: ConfigurationDep,
    rollouts: RolloutsDep,
    response: Response,
    if_match: IfMatch = None,
    freeze_override: Override = False,
) -> RolledOutEntry:
    """Give a secret entry a new value, the one given or `generate`d (never shown): a new Vault
    version (the old one stays readable) and a new version of the entry. With `roll_out`,
    the rotation is rolled out as `PUT` rolls out a change."""
    check(principal, Role.OPERATOR, body.scope.component, body.scope.environment)
    current = await service.rotate(principal, key, body, if_match, freeze_override)
    response.headers["ETag"] = etag(current)
    return await rollouts.answer(principal, key, current, body.roll_out)


@router.delete("/{key}", response_model=ConfigVersion, responses=errors(412))
async def delete_entry(
    key: Key,
    principal: Operator,
    service: ConfigurationDep,
    response: Response,
    component: ComponentQuery = None,
    environment: EnvironmentQuery = None,
    if_match: IfMatch = None,
    freeze_override: Override = False,
) -> ConfigVersion:
    """Delete `key` at exactly the given scope, softly: a version marks it deleted, its
    history stays, and a less specific scope's value applies again."""
    scope = Scope(component=component, environment=environment)
    current = await service.delete(principal, key, scope, if_match, freeze_override)
    response.headers["ETag"] = etag(current)
    return (await service.versions(key, scope, 1))[0]


@router.get("/{key}/versions", response_model=list[ConfigVersion])
async def entry_versions(
    key: Key,
    _: Viewer,
    service: ConfigurationDep,
    component: ComponentQuery = None,
    environment: EnvironmentQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ConfigVersion]:
    """The versions of `key` at exactly the given scope, newest first: who, when, and what
    changed (for a secret only that it changed)."""
    return await service.versions(key, Scope(component=component, environment=environment), limit)
