"""`/api/v1/deployments`: start, follow, steer, retry and roll back deployments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from api.auth import Operator, Viewer
from api.deps import DeploymentsDep
from api.openapi import errors
from api.schemas import (
    DeploymentPage,
    DeploymentView,
    DesiredState,
    Revision,
    RollbackRequest,
    SignalRecord,
)
from api.scope_checks import check
from api.services.deployments import Action
from core.models.apikeys import Role
from core.models.deployments import (
    ActionRequest,
    DeploymentRequest,
    DeploymentState,
    DeploymentStatus,
)

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200,
        description="repeat-safe retries: the same key and body answer the same deployment",
    ),
]
_STARTS = errors(409, 502)
_STARTS[200] = {"model": DeploymentView, "description": "the deployment an earlier request "
                "with the same Idempotency-Key started"}  # fmt: skip


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=DeploymentView, responses=_STARTS
)
async def create_deployment(
    body: DeploymentRequest,
    response: Response,
    principal: Operator,
    service: DeploymentsDep,
    idempotency_key: IdempotencyKey = None,
) -> DeploymentView:
    """Deploy a version of a component (by name or id) to an environment with a strategy;
    409 while the target is being deployed or the component retired."""
    check(principal, Role.OPERATOR, body.component, body.environment)
    started = await service.start(principal, body, idempotency_key=idempotency_key)
    view = service.view(started.row)
    response.headers["Location"] = view.links.self
    if not started.created:
        response.status_code = status.HTTP_200_OK
    return view


@router.get("", response_model=DeploymentPage)
async def list_deployments(
    principal: Viewer,
    service: DeploymentsDep,
    component: Annotated[str | None, Query()] = None,
    environment: Annotated[str | None, Query()] = None,
    state: Annotated[DeploymentState | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DeploymentPage:
    """Newest first; filter by component, environment and status. A scoped key or token
    that may not read everything sees only the deployments in its scope."""
    return await service.page(
        component=component,
        environment=environment,
        state=state,
        limit=limit,
        offset=offset,
        principal=principal,
    )


@router.get("/revisions", response_model=list[Revision])
async def list_revisions(
    principal: Viewer,
    service: DeploymentsDep,
    component: Annotated[str, Query()],
    environment: Annotated[str, Query()],
) -> list[Revision]:
    """What ran after each successful deployment of a target, newest first; `env` values are
    shown to admins only."""
    return await service.revisions(principal, component, environment)


@router.get("/{deployment_id}", response_model=DeploymentView)
async def get_deployment(deployment_id: str, _: Viewer, service: DeploymentsDep) -> DeploymentView:
    """The deployment with its status: live from the workflow while it runs."""
    return await service.get(deployment_id)


@router.get("/{deployment_id}/signals", response_model=list[SignalRecord], responses=errors(502))
async def list_signals(
    deployment_id: str, _: Viewer, service: DeploymentsDep
) -> list[SignalRecord]:
    """Every signal the deployment received (promote, pause, ... sent from the Temporal UI),
    with the Temporal identity of its sender, from Temporal's history."""
    return await service.signals(deployment_id)


@router.put("/{deployment_id}", response_model=DeploymentStatus, responses=errors(409))
async def set_desired_state(
    deployment_id: str, body: DesiredState, principal: Operator, service: DeploymentsDep
) -> DeploymentStatus:
    """Change the desired state: paused, resumed, promoted or aborted."""
    return await service.set_desired(principal, deployment_id, body)


@router.post(
    "/{deployment_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeploymentView,
    responses=errors(409, 502),
)
async def retry(deployment_id: str, principal: Operator, service: DeploymentsDep) -> DeploymentView:
    """Start a failed, aborted or rolled-back deployment again, as a new deployment."""
    started = await service.retry(principal, deployment_id)
    return service.view(started.row)


_ROLLBACK = errors(409, 502)
_ROLLBACK[202] = {"model": DeploymentView, "description": "the rollback deployment, started"}


@router.post("/{deployment_id}/rollback", response_model=DeploymentView, responses=_ROLLBACK)
async def rollback(
    deployment_id: str,
    response: Response,
    principal: Operator,
    service: DeploymentsDep,
    body: RollbackRequest | None = None,
) -> DeploymentView:
    """Running: abort it, with compensation (200). Ended: redeploy the previous revision (or
    `revision`) by the fast path, an immediate switch with no steps unless a strategy is
    given (202, the new deployment)."""
    started = await service.rollback(principal, deployment_id, body)
    if started is None:
        return await service.get(deployment_id)
    response.status_code = status.HTTP_202_ACCEPTED
    return service.view(started.row)


@router.post("/{deployment_id}/{action}", response_model=DeploymentStatus, responses=errors(409))
async def act(
    deployment_id: str,
    action: Action,
    principal: Operator,
    service: DeploymentsDep,
    body: ActionRequest | None = None,
) -> DeploymentStatus:
    """Steer a running deployment; 409 says why when its phase does not allow the action."""
    return await service.act(principal, deployment_id, action, body)
