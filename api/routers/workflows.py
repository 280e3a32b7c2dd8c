"""`/api/v1/orchestration/workflows`: start, inspect, list and cancel Temporal workflows."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from pydantic import ValidationError
from temporalio.client import (
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.audit_trail import commit_with_audit
from api.auth import Operator, Viewer
from api.deployment_service import start_deployment
from api.deps import SessionDep, SettingsDep, TemporalDep
from api.errors import field_errors, temporal_error
from api.metrics import WORKFLOW_STARTS
from api.routers.deployments import check_conditions
from api.schemas import (
    CancelAccepted,
    Links,
    WorkflowDetail,
    WorkflowFailure,
    WorkflowPage,
    WorkflowStarted,
    WorkflowStartRequest,
    WorkflowStatus,
    WorkflowSummary,
    WorkflowType,
)
from core.contracts import (
    COMPONENT,
    ENVIRONMENT,
    INITIATOR,
    STATUS_QUERY,
    WORKFLOW_CONTRACTS,
)
from core.errors import ConflictError, InvalidInputError, PermissionDeniedError
from core.models.apikeys import Role
from core.models.deployments import DeploymentRequest
from core.settings import Settings

router = APIRouter(prefix="/api/v1/orchestration", tags=["orchestration"])

RPC_TIMEOUT = timedelta(seconds=10)
QUERY_TIMEOUT = timedelta(seconds=3)
INPUT_DIGEST_MEMO = "input_sha256"

_STATUS_NAMES: dict[WorkflowExecutionStatus, WorkflowStatus] = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "continued_as_new",
}
_VISIBILITY_STATUS = {
    "running": "Running",
    "completed": "Completed",
    "failed": "Failed",
    "cancelled": "Canceled",
    "terminated": "Terminated",
    "timed_out": "TimedOut",
    "continued_as_new": "ContinuedAsNew",
}
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:@/-]{1,200}$")


def _links(request: Request, settings: Settings, wf_id: str, run_id: str) -> Links:
    # Formatted, not request.url_for: that walks every route, a cost on the hot path.
    path = f"{request.scope.get('root_path', '')}/api/v1/orchestration/workflows/{wf_id}"
    ui = f"{settings.temporal_ui}/namespaces/{settings.temporal_namespace}/workflows/{wf_id}"
    return Links(self=path, cancel=path, temporal_ui=f"{ui}/{run_id}")


def _status(execution: WorkflowExecution) -> WorkflowStatus:
    return _STATUS_NAMES.get(execution.status or WorkflowExecutionStatus.RUNNING, "running")


def _initiator(execution: WorkflowExecution) -> str | None:
    return execution.typed_search_attributes.get(INITIATOR)


def _digest(wf_type: str, payload: dict[str, Any]) -> str:
    canonical = json.dumps([wf_type, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@router.get("/workflow-types", response_model=list[WorkflowType])
async def list_workflow_types(_: Viewer) -> list[WorkflowType]:
    """The workflow types that can be started, with the JSON schema of their input."""
    return [
        WorkflowType(
            type=c.name, description=c.description, input_schema=c.input_model.model_json_schema()
        )
        for c in WORKFLOW_CONTRACTS.values()
    ]


@router.post(
    "/workflows",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WorkflowStarted,
    responses={200: {"description": "an existing workflow with that id or Idempotency-Key"}},
)
async def start_workflow(
    body: WorkflowStartRequest,
    request: Request,
    response: Response,
    principal: Operator,
    temporal: TemporalDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None, Header(max_length=200, description="repeat-safe retries of this request")
    ] = None,
) -> WorkflowStarted:
    """Start a workflow by type. The same `id` or `Idempotency-Key` never starts a second one:
    the existing workflow is answered with 200 instead of 202."""
    contract = WORKFLOW_CONTRACTS.get(body.type)
    if contract is None:
        raise InvalidInputError(
            f"unknown workflow type {body.type!r}",
            hint=f"use one of {sorted(WORKFLOW_CONTRACTS)}",
        )
    try:
        workflow_input = contract.input_model.model_validate(body.input)
    except ValidationError as err:
        fields = field_errors(err.errors(), ("input",))
        raise InvalidInputError(
            f"{len(fields)} invalid field(s) in the input of {body.type}",
            hint="GET /api/v1/orchestration/workflow-types shows the input schema",
            fields=fields,
        ) from None
    if isinstance(workflow_input, DeploymentRequest):
        # Deployments have their own id scheme (one per target) and record: same path as
        # POST /api/v1/deployments.
        check_conditions(workflow_input)
        async with request.app.state.sessions() as session:
            row = await start_deployment(session, temporal, settings, principal, workflow_input)
        WORKFLOW_STARTS.labels(contract.name, "created").inc()
        return WorkflowStarted(
            id=row.workflow_id,
            run_id=row.run_id or "",
            type=contract.name,
            created=True,
            status="running",
            links=_links(request, settings, row.workflow_id, row.run_id or ""),
        )
    digest = _digest(body.type, workflow_input.model_dump(mode="json"))
    if body.id:
        wf_id = body.id
    elif idempotency_key:
        scoped = hashlib.sha256(f"{principal.key_id}:{idempotency_key}".encode()).hexdigest()
        wf_id = f"{body.type}-idem-{scoped[:32]}"
    else:
        wf_id = f"{body.type}-{uuid.uuid4()}"
    tags = TypedSearchAttributes([SearchAttributePair(INITIATOR, principal.initiator)])
    try:
        handle: WorkflowHandle[Any, Any] = await temporal.start_workflow(
            contract.name,
            workflow_input,
            id=wf_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=tags,
            memo={INPUT_DIGEST_MEMO: digest},
            static_summary=f"{contract.name} started by {principal.initiator}",
            rpc_timeout=RPC_TIMEOUT,
        )
    except WorkflowAlreadyStartedError:
        return await _existing(request, response, temporal, settings, body.type, wf_id, digest)
    except RPCError as err:
        raise temporal_error(err, f"workflow {wf_id}") from err
    WORKFLOW_STARTS.labels(contract.name, "created").inc()
    run_id = handle.result_run_id or ""
    return WorkflowStarted(
        id=wf_id,
        run_id=run_id,
        type=contract.name,
        created=True,
        status="running",
        links=_links(request, settings, wf_id, run_id),
    )


async def _existing(
    request: Request,
    response: Response,
    temporal: TemporalDep,
    settings: Settings,
    wf_type: str,
    wf_id: str,
    digest: str,
) -> WorkflowStarted:
    desc = await temporal.get_workflow_handle(wf_id).describe(rpc_timeout=RPC_TIMEOUT)
    if desc.workflow_type != wf_type:
        raise ConflictError(
            f"workflow id {wf_id!r} is taken by a workflow of type {desc.workflow_type!r}",
            hint="choose another id",
        )
    memo = await desc.memo()
    if memo.get(INPUT_DIGEST_MEMO) not in (None, digest):
        raise ConflictError(
            f"workflow {wf_id!r} exists with a different input",
            hint="an id or Idempotency-Key may only be reused for the same request",
        )
    WORKFLOW_STARTS.labels(wf_type, "existing").inc()
    response.status_code = status.HTTP_200_OK
    return WorkflowStarted(
        id=wf_id,
        run_id=desc.run_id,
        type=wf_type,
        created=False,
        status=_status(desc),
        links=_links(request, settings, wf_id, desc.run_id),
    )


@router.get("/workflows/{workflow_id}", response_model=WorkflowDetail, name="get_workflow")
async def get_workflow(
    workflow_id: str,
    request: Request,
    _: Viewer,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> WorkflowDetail:
    """Status from Temporal; live progress while it runs; the result or failure once closed."""
    handle = temporal.get_workflow_handle(workflow_id)
    try:
        desc = await handle.describe(rpc_timeout=RPC_TIMEOUT)
    except RPCError as err:
        raise temporal_error(err, f"workflow {workflow_id!r}") from err
    detail = WorkflowDetail(
        id=desc.id,
        run_id=desc.run_id,
        type=desc.workflow_type,
        status=_status(desc),
        task_queue=desc.task_queue,
        initiator=_initiator(desc),
        start_time=desc.start_time,
        close_time=desc.close_time,
        links=_links(request, settings, desc.id, desc.run_id),
    )
    run_handle = temporal.get_workflow_handle(workflow_id, run_id=desc.run_id)
    if detail.status == "running":
        try:
            progress = await run_handle.query(STATUS_QUERY, rpc_timeout=QUERY_TIMEOUT)
            detail.progress = progress
        except RPCError as err:
            detail.progress_error = f"no worker answered the status query: {err.message}"
        except Exception as err:  # a workflow without a status query, or one that failed it
            detail.progress_error = f"status query failed: {err}"
    elif detail.status == "completed":
        detail.result = await run_handle.result(follow_runs=False, rpc_timeout=RPC_TIMEOUT)
    elif detail.status in ("failed", "cancelled", "terminated", "timed_out"):
        try:
            await run_handle.result(follow_runs=False, rpc_timeout=RPC_TIMEOUT)
        except WorkflowFailureError as err:
            detail.failure = _failure(err.cause)
    return detail


def _failure(err: BaseException | None) -> WorkflowFailure | None:
    if err is None:
        return None
    kind = getattr(err, "type", None) or type(err).__name__
    message = err.message if isinstance(err, FailureError) else str(err)
    return WorkflowFailure(message=message, type=str(kind), cause=_failure(err.__cause__))


@router.delete(
    "/workflows/{workflow_id}", status_code=status.HTTP_202_ACCEPTED, response_model=CancelAccepted
)
async def cancel_workflow(
    workflow_id: str,
    principal: Operator,
    temporal: TemporalDep,
    session: SessionDep,
    terminate: Annotated[
        bool, Query(description="terminate at once, without compensation (admin only)")
    ] = False,
    reason: Annotated[str, Query(max_length=500)] = "",
) -> CancelAccepted:
    """Request cancellation, which lets the workflow compensate; `terminate=true` stops it dead."""
    if terminate and not principal.role.allows(Role.ADMIN):
        raise PermissionDeniedError(
            "terminating needs the admin role",
            hint="cancel without terminate=true: the workflow then compensates cleanly",
        )
    handle = temporal.get_workflow_handle(workflow_id)
    try:
        desc = await handle.describe(rpc_timeout=RPC_TIMEOUT)
    except RPCError as err:
        raise temporal_error(err, f"workflow {workflow_id!r}") from err
    state = _status(desc)
    if state != "running":
        raise ConflictError(
            f"workflow {workflow_id!r} is {state}; only a running workflow can be cancelled",
        )
    why = f"by {principal.initiator}" + (f": {reason}" if reason else "")
    run_handle = temporal.get_workflow_handle(workflow_id, run_id=desc.run_id)
    try:
        if terminate:
            await run_handle.terminate(reason=f"terminated {why}", rpc_timeout=RPC_TIMEOUT)
        else:
            await run_handle.cancel(reason=f"cancelled {why}", rpc_timeout=RPC_TIMEOUT)
    except RPCError as err:
        raise temporal_error(err, f"workflow {workflow_id!r}") from err
    action = "terminated" if terminate else "cancel_requested"
    await commit_with_audit(
        session, principal, f"workflow.{action}", workflow_id, run_id=desc.run_id, reason=reason
    )
    return CancelAccepted(id=workflow_id, run_id=desc.run_id, action=action)


@router.get("/workflows", response_model=WorkflowPage)
async def list_workflows(
    _: Viewer,
    temporal: TemporalDep,
    type: Annotated[str | None, Query(description="workflow type")] = None,
    status_: Annotated[
        WorkflowStatus | None, Query(alias="status", description="execution status")
    ] = None,
    initiator: Annotated[str | None, Query()] = None,
    component: Annotated[str | None, Query()] = None,
    environment: Annotated[str | None, Query()] = None,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 50,
    page_token: Annotated[str | None, Query(description="from next_page_token")] = None,
) -> WorkflowPage:
    """List workflows through Temporal visibility, newest first, filtered and paginated."""
    clauses = []
    for field, value in (
        ("WorkflowType", type),
        (INITIATOR.name, initiator),
        (COMPONENT.name, component),
        (ENVIRONMENT.name, environment),
    ):
        if value is None:
            continue
        if not _SAFE_VALUE.match(value):
            raise InvalidInputError(
                f"filter {field} has characters that are not allowed: {value!r}",
                hint="use letters, digits and _ . : @ / -",
            )
        clauses.append(f"{field} = '{value}'")
    if status_ is not None:
        clauses.append(f"ExecutionStatus = '{_VISIBILITY_STATUS[status_]}'")
    token = _decode_token(page_token)
    iterator = temporal.list_workflows(
        " AND ".join(clauses) or None,
        page_size=page_size,
        next_page_token=token,
        rpc_timeout=RPC_TIMEOUT,
    )
    try:
        await iterator.fetch_next_page()
    except RPCError as err:
        raise temporal_error(err, "workflow list") from err
    items = [
        WorkflowSummary(
            id=e.id,
            run_id=e.run_id,
            type=e.workflow_type,
            status=_status(e),
            initiator=_initiator(e),
            start_time=e.start_time,
            close_time=e.close_time,
        )
        for e in iterator.current_page or []
    ]
    next_token = iterator.next_page_token
    return WorkflowPage(
        items=items,
        next_page_token=base64.urlsafe_b64encode(next_token).decode() if next_token else None,
    )


def _decode_token(token: str | None) -> bytes | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError):
        raise InvalidInputError(
            "page_token is not a token this API gave out",
            hint="pass the next_page_token of the previous page unchanged",
        ) from None
