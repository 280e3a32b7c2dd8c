"""`/api/v1/policies`: what deployments and configuration changes must respect, per environment
(admins write, viewers read; docs/policies.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status

from api.auth import Admin, Viewer
from api.deps import SessionDep
from api.openapi import errors
from api.scope_checks import readable
from api.services.policies import PolicyService, etag
from core.models.names import EnvironmentName
from core.models.policies import Policy, PolicySpec, PolicyVersionPage

router = APIRouter(prefix="/api/v1/policies", tags=["policies"])


async def _policies(session: SessionDep) -> PolicyService:
    return PolicyService(session)


PoliciesDep = Annotated[PolicyService, Depends(_policies)]
Environment = Annotated[EnvironmentName, Path(description="the environment the policy governs")]
IfMatch = Annotated[
    str | None,
    Header(max_length=1024, description="the ETag last read: the change fails (412) if stale"),
]
ETAG: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {"ETag": {"description": "the policy's version", "schema": {"type": "string"}}}
    }
}


@router.get("", response_model=list[Policy])
async def list_policies(principal: Viewer, service: PoliciesDep) -> list[Policy]:
    """The policy in force in each environment that has one (that the caller may read)."""
    may_read = readable(principal)
    return [p for p in await service.all() if may_read(None, p.environment)]


@router.get("/{environment}", response_model=Policy, responses=ETAG)
async def get_policy(
    environment: Environment, _: Viewer, service: PoliciesDep, response: Response
) -> Policy:
    """The environment's policy in force (404 when it has none), with its ETag."""
    policy = await service.get(environment)
    response.headers["ETag"] = etag(policy)
    return policy


@router.put("/{environment}", response_model=Policy, responses={**ETAG, **errors(409, 412)})
async def put_policy(
    environment: Environment,
    spec: PolicySpec,
    principal: Admin,
    service: PoliciesDep,
    response: Response,
    if_match: IfMatch = None,
) -> Policy:
    """Set the environment's policy: a new version, recorded with who and when. A rule whose
    CEL does not compile, reads an unknown variable or does not answer a boolean is a 422
    naming the rule. With `If-Match`, a policy changed since it was read is a 412; without,
    409 when another admin wrote a version at the same moment."""
    policy = await service.put(principal, environment, spec, if_match)
    response.headers["ETag"] = etag(policy)
    return policy


@router.delete("/{environment}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(409, 412))
async def delete_policy(
    environment: Environment, principal: Admin, service: PoliciesDep, if_match: IfMatch = None
) -> Response:
    """Remove the environment's policy; its versions stay (the deletion is one of them)."""
    await service.delete(principal, environment, if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{environment}/versions", response_model=PolicyVersionPage)
async def list_versions(
    environment: Environment,
    _: Viewer,
    service: PoliciesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> PolicyVersionPage:
    """Every version of the environment's policy, newest first (404 when it never had one)."""
    return await service.versions(environment, limit, offset)
