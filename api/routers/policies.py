"""`/api/v1/policies`: what deployments and configuration changes must respect, per environment
(admins write, viewers read; docs/policies.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from api.auth import Admin, Viewer
from api.deps import SessionDep
from api.openapi import errors
from api.services.policies import PolicyService
from core.models.names import EnvironmentName
from core.models.policies import Policy, PolicySpec, PolicyVersionPage

router = APIRouter(prefix="/api/v1/policies", tags=["policies"])


async def _policies(session: SessionDep) -> PolicyService:
    return PolicyService(session)


PoliciesDep = Annotated[PolicyService, Depends(_policies)]
Environment = Annotated[EnvironmentName, Path(description="the environment the policy governs")]


@router.get("", response_model=list[Policy])
async def list_policies(_: Viewer, service: PoliciesDep) -> list[Policy]:
    """The policy in force in each environment that has one."""
    return await service.all()


@router.get("/{environment}", response_model=Policy)
async def get_policy(environment: Environment, _: Viewer, service: PoliciesDep) -> Policy:
    """The environment's policy in force (404 when it has none)."""
    return await service.get(environment)


@router.put("/{environment}", response_model=Policy, responses=errors(409))
async def put_policy(
    environment: Environment, spec: PolicySpec, principal: Admin, service: PoliciesDep
) -> Policy:
    """Set the environment's policy: a new version, recorded with who and when. A rule whose
    CEL does not compile, reads an unknown variable or does not answer a boolean is a 422
    naming the rule; 409 when another admin wrote a version at the same moment."""
    return await service.put(principal, environment, spec)


@router.delete("/{environment}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(409))
async def delete_policy(
    environment: Environment, principal: Admin, service: PoliciesDep
) -> Response:
    """Remove the environment's policy; its versions stay (the deletion is one of them)."""
    await service.delete(principal, environment)
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
