"""`/api/v1/orchestration/workflows`: start, inspect, list and cancel Temporal workflows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from api.auth import Operator, Viewer
from api.deps import WorkflowsDep
from api.openapi import errors
from api.schemas import (
    CancelAccepted,
    WorkflowDetail,
    WorkflowPage,
    WorkflowStarted,
    WorkflowStartRequest,
    WorkflowStatus,
    WorkflowType,
)
from api.scope_checks import check_input
from core.models.apikeys import Role

router = APIRouter(prefix="/api/v1/orchestration", tags=["orchestration"])

_STARTS = errors(409, 502)
_STARTS[200] = {
    "model": WorkflowStarted,
    "description": "an existing workflow with that id or Idempotency-Key",
}


@router.get("/workflow-types", response_model=list[WorkflowType])
async def list_workflow_types(_: Viewer, service: WorkflowsDep) -> list[WorkflowType]:
    """The workflow types that can be started, with the JSON schema of their input."""
    return service.types()


@router.post(
    "/workflows",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WorkflowStarted,
    responses=_STARTS,
)
async def start_workflow(
    body: WorkflowStartRequest,
    response: Response,
    principal: Operator,
    service: WorkflowsDep,
    idempotency_key: Annotated[
        str | None, Header(max_length=200, description="repeat-safe retries of this request")
    ] = None,
) -> WorkflowStarted:
    """Start a workflow by type. The same `id` or `Idempotency-Key` never starts a second one:
    the existing workflow is answered with 200 instead of 202. Type `deployment` is the same
    as POST /api/v1/deployments (its `id` is the deployment's); `component-retire` the same as
    DELETE /api/v1/components/{id}/environments/{env} (admin). Ids starting with `deploy:`,
    `retire:` or `r2c:` are refused (422). A scoped key or token may start only a workflow
    whose input names a component in its scope."""
    check_input(principal, Role.OPERATOR, body.input)
    started = await service.start(principal, body, idempotency_key)
    if not started.created:
        response.status_code = status.HTTP_200_OK
    return started


@router.get("/workflows/{workflow_id}", response_model=WorkflowDetail, responses=errors(502))
async def get_workflow(workflow_id: str, _: Viewer, service: WorkflowsDep) -> WorkflowDetail:
    """Status from Temporal; live progress while it runs; the result or failure once closed."""
    return await service.get(workflow_id)


@router.delete(
    "/workflows/{workflow_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CancelAccepted,
    responses=errors(409, 502),
)
async def cancel_workflow(
    workflow_id: str,
    principal: Operator,
    service: WorkflowsDep,
    terminate: Annotated[
        bool, Query(description="terminate at once, without compensation (admin only)")
    ] = False,
    reason: Annotated[str, Query(max_length=500)] = "",
) -> CancelAccepted:
    """Request cancellation, which lets the workflow compensate; `terminate=true` stops it dead."""
    return await service.cancel(principal, workflow_id, terminate, reason)


@router.get("/workflows", response_model=WorkflowPage, responses=errors(400, 502))
async def list_workflows(
    _: Viewer,
    service: WorkflowsDep,
    type: Annotated[str | None, Query(description="workflow type")] = None,
    status_: Annotated[
        WorkflowStatus | None, Query(alias="status", description="execution status")
    ] = None,
    initiator: Annotated[str | None, Query()] = None,
    component: Annotated[str | None, Query()] = None,
    environment: Annotated[str | None, Query()] = None,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 50,
    page_token: Annotated[
        str | None, Query(description="the next_page_token of the previous page, unchanged")
    ] = None,
) -> WorkflowPage:
    """List workflows through Temporal visibility, newest first, filtered and paginated."""
    return await service.page(
        wf_type=type,
        status=status_,
        initiator=initiator,
        component=component,
        environment=environment,
        page_size=page_size,
        page_token=page_token,
    )
