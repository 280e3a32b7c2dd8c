"""Workflows by type: start (deployments and retires by their own rules), inspect, list, cancel."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.errors import field_errors
from api.gateway import Gateway, StartPolicy, Tags
from api.metrics import WORKFLOW_STARTS
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
from api.services import audit
from api.services.components import ComponentService
from api.services.deployment_start import scoped_key
from api.services.deployments import DeploymentService
from core.contracts import (
    COMPONENT,
    DEPLOYMENT_WORKFLOW,
    ENVIRONMENT,
    INITIATOR,
    RETIRE_WORKFLOW,
    STATUS_QUERY,
    WORKFLOW_CONTRACTS,
    WorkflowContract,
)
from core.errors import ConflictError, InvalidInputError, PermissionDeniedError
from core.ids import RESERVED_PREFIXES, is_reserved, retire_workflow_id
from core.models.apikeys import Principal, Role
from core.models.deployments import DeploymentRequest
from core.models.operations import RetireRequest
from core.settings import Settings

INPUT_DIGEST_MEMO = "input_sha256"
DEPLOYMENT_ID_MAX = 64

_STATUS_NAMES: dict[WorkflowExecutionStatus, WorkflowStatus] = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "continued_as_new",
}
VISIBILITY_STATUS = {
    "running": "Running",
    "completed": "Completed",
    "failed": "Failed",
    "cancelled": "Canceled",
    "terminated": "Terminated",
    "timed_out": "TimedOut",
    "continued_as_new": "ContinuedAsNew",
}
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:@/-]{1,200}$")


def status_of(execution: WorkflowExecution) -> WorkflowStatus:
    return _STATUS_NAMES.get(execution.status or WorkflowExecutionStatus.RUNNING, "running")


def _digest(wf_type: str, payload: dict[str, Any]) -> str:
    canonical = json.dumps([wf_type, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class WorkflowService:
    """The orchestration API's rules; deployments and retires go through their own services,
    so they need the same role, take the same locks and are audited the same way."""

    def __init__(
        self,
        session: AsyncSession,
        gateway: Gateway,
        settings: Settings,
        deployments: DeploymentService,
        components: ComponentService,
        root_path: str = "",
    ) -> None:
        self.session = session
        self.gateway = gateway
        self.settings = settings
        self.deployments = deployments
        self.components = components
        self.root_path = root_path

    def links(self, workflow_id: str, run_id: str) -> Links:
        # Formatted, not request.url_for: that walks every route, a cost on the hot path.
        path = f"{self.root_path}/api/v1/orchestration/workflows/{workflow_id}"
        s = self.settings
        ui = f"{s.temporal_ui}/namespaces/{s.temporal_namespace}/workflows/{workflow_id}"
        return Links(self=path, cancel=path, temporal_ui=f"{ui}/{run_id}")

    @staticmethod
    def types() -> list[WorkflowType]:
        return [
            WorkflowType(
                type=c.name,
                description=c.description,
                input_schema=c.input_model.model_json_schema(),
            )
            for c in WORKFLOW_CONTRACTS.values()
        ]

    async def start(
        self, principal: Principal, body: WorkflowStartRequest, idempotency_key: str | None
    ) -> WorkflowStarted:
        """Start a workflow by type; `created` is false when the id or Idempotency-Key had
        already started one with the same input."""
        contract, workflow_input = checked_start(principal, body.type, body.input, "starting")
        if body.id is not None and is_reserved(body.id):
            raise InvalidInputError(
                f"workflow id {body.id!r} starts with a prefix the system keeps for itself",
                hint=f"choose an id that does not start with {', '.join(RESERVED_PREFIXES)}; "
                "deployments and retires get theirs from their target",
                fields=[{"field": "body.id", "message": "reserved prefix"}],
            )
        if isinstance(workflow_input, DeploymentRequest):
            started = await self._deployment(principal, workflow_input, body, idempotency_key)
        elif isinstance(workflow_input, RetireRequest):
            started = await self._retire(principal, workflow_input, body)
        else:
            started = await self._generic(
                principal, contract, workflow_input, body, idempotency_key
            )
        WORKFLOW_STARTS.labels(contract.name, "created" if started.created else "existing").inc()
        return started

    async def _deployment(
        self,
        principal: Principal,
        inp: DeploymentRequest,
        body: WorkflowStartRequest,
        idempotency_key: str | None,
    ) -> WorkflowStarted:
        if body.id is not None and len(body.id) > DEPLOYMENT_ID_MAX:
            raise InvalidInputError(
                f"a deployment id has at most {DEPLOYMENT_ID_MAX} characters",
                fields=[{"field": "body.id", "message": "too long for a deployment id"}],
                hint="choose a shorter id, or leave it out",
            )
        started = await self.deployments.start(principal, inp, body.id, idempotency_key)
        row = started.row
        status: WorkflowStatus = "running"
        if not started.created and row.run_id:
            status = status_of(await self.gateway.describe(row.workflow_id, row.run_id))
        return WorkflowStarted(
            id=row.workflow_id,
            run_id=row.run_id or "",
            type=DEPLOYMENT_WORKFLOW,
            created=started.created,
            status=status,
            links=self.links(row.workflow_id, row.run_id or ""),
            deployment_id=row.id,
        )

    async def _retire(
        self, principal: Principal, inp: RetireRequest, body: WorkflowStartRequest
    ) -> WorkflowStarted:
        expected = retire_workflow_id(inp.component, inp.environment)
        if body.id is not None and body.id != expected:
            raise InvalidInputError(
                f"a retire's workflow id is fixed by its target: {expected!r}",
                hint="leave `id` out",
                fields=[{"field": "body.id", "message": f"must be {expected!r} or absent"}],
            )
        started = await self.components.start_retire(
            principal, inp.component, inp.environment, registered=False
        )
        return WorkflowStarted(
            id=started.workflow_id,
            run_id=started.run_id,
            type=RETIRE_WORKFLOW,
            created=started.created,
            status="running",
            links=self.links(started.workflow_id, started.run_id),
        )

    async def _generic(
        self,
        principal: Principal,
        contract: WorkflowContract,
        workflow_input: BaseModel,
        body: WorkflowStartRequest,
        idempotency_key: str | None,
    ) -> WorkflowStarted:
        digest = _digest(contract.name, workflow_input.model_dump(mode="json"))
        if body.id:
            wf_id = body.id
        elif idempotency_key:
            wf_id = f"{contract.name}-idem-{scoped_key(principal, idempotency_key)}"
        else:
            wf_id = f"{contract.name}-{uuid.uuid4()}"
        try:
            handle = await self.gateway.start(
                contract.name,
                workflow_input,
                workflow_id=wf_id,
                policy=StartPolicy.ONCE,
                tags=Tags(initiator=principal.initiator),
                memo={INPUT_DIGEST_MEMO: digest},
                summary=f"{contract.name} started by {principal.initiator}",
            )
        except WorkflowAlreadyStartedError:
            return await self._existing(contract.name, wf_id, digest)
        run_id = handle.result_run_id or ""
        await audit.commit(
            self.session, principal, "workflow.started", wf_id, type=contract.name, run_id=run_id
        )
        return WorkflowStarted(
            id=wf_id,
            run_id=run_id,
            type=contract.name,
            created=True,
            status="running",
            links=self.links(wf_id, run_id),
        )

    async def _existing(self, wf_type: str, wf_id: str, digest: str) -> WorkflowStarted:
        desc = await self.gateway.describe(wf_id)
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
        return WorkflowStarted(
            id=wf_id,
            run_id=desc.run_id,
            type=wf_type,
            created=False,
            status=status_of(desc),
            links=self.links(wf_id, desc.run_id),
        )

    async def get(self, workflow_id: str) -> WorkflowDetail:
        """Status from Temporal; live progress while it runs; the result or failure once closed."""
        desc = await self.gateway.describe(workflow_id)
        detail = WorkflowDetail(
            id=desc.id,
            run_id=desc.run_id,
            type=desc.workflow_type,
            status=status_of(desc),
            task_queue=desc.task_queue,
            initiator=desc.typed_search_attributes.get(INITIATOR),
            start_time=desc.start_time,
            close_time=desc.close_time,
            links=self.links(desc.id, desc.run_id),
        )
        if detail.status == "running":
            try:
                detail.progress = await self.gateway.query(workflow_id, desc.run_id, STATUS_QUERY)
            except RPCError as err:
                detail.progress_error = f"no worker answered the status query: {err.message}"
            except Exception as err:  # a workflow without a status query, or one that failed it
                detail.progress_error = f"status query failed: {err}"
        elif detail.status == "completed":
            detail.result = await self.gateway.result(workflow_id, desc.run_id)
        elif detail.status in ("failed", "cancelled", "terminated", "timed_out"):
            try:
                await self.gateway.result(workflow_id, desc.run_id)
            except WorkflowFailureError as err:
                detail.failure = _failure(err.cause)
        return detail

    async def cancel(
        self, principal: Principal, workflow_id: str, terminate: bool, reason: str
    ) -> CancelAccepted:
        """Request cancellation, which lets the workflow compensate; `terminate` stops it dead."""
        if terminate and not principal.role.allows(Role.ADMIN):
            raise PermissionDeniedError(
                "terminating needs the admin role",
                hint="cancel without terminate=true: the workflow then compensates cleanly",
            )
        desc = await self.gateway.describe(workflow_id)
        state = status_of(desc)
        if state != "running":
            raise ConflictError(
                f"workflow {workflow_id!r} is {state}; only a running workflow can be cancelled",
                hint="GET it to see how it ended",
            )
        why = f"by {principal.initiator}" + (f": {reason}" if reason else "")
        if terminate:
            await self.gateway.terminate(workflow_id, desc.run_id, f"terminated {why}")
        else:
            await self.gateway.cancel(workflow_id, desc.run_id, f"cancelled {why}")
        action = "terminated" if terminate else "cancel_requested"
        await audit.commit(
            self.session,
            principal,
            f"workflow.{action}",
            workflow_id,
            run_id=desc.run_id,
            reason=reason or None,
        )
        return CancelAccepted(id=workflow_id, run_id=desc.run_id, action=action)

    async def page(
        self,
        *,
        wf_type: str | None,
        status: WorkflowStatus | None,
        initiator: str | None,
        component: str | None,
        environment: str | None,
        page_size: int,
        page_token: str | None,
    ) -> WorkflowPage:
        """Workflows through Temporal visibility, newest first, filtered and paginated."""
        clauses = []
        for field, value in (
            ("WorkflowType", wf_type),
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
        if status is not None:
            clauses.append(f"ExecutionStatus = '{VISIBILITY_STATUS[status]}'")
        executions, next_token = await self.gateway.page(
            " AND ".join(clauses) or None, page_size, page_token
        )
        items = [
            WorkflowSummary(
                id=e.id,
                run_id=e.run_id,
                type=e.workflow_type,
                status=status_of(e),
                initiator=e.typed_search_attributes.get(INITIATOR),
                start_time=e.start_time,
                close_time=e.close_time,
            )
            for e in executions
        ]
        return WorkflowPage(items=items, next_page_token=next_token)


def checked_start(
    principal: Principal, wf_type: str, raw: dict[str, Any], doing: str
) -> tuple[WorkflowContract, BaseModel]:
    """The contract of a startable type and its input, checked as every start checks them
    (the API's, a schedule's, an event route's): a known type, a role that may start it, an
    input that validates. `doing` names the act in the 403 ("starting", "scheduling")."""
    contract = startable(principal, wf_type, doing)
    return contract, _validated(contract, raw)


def startable(
    principal: Principal,
    wf_type: str,
    doing: str,
    *,
    field: str = "body.type",
    hint: str = "ask an admin for a key with a higher role",
) -> WorkflowContract:
    """The contract of a type `principal` may start: 422 for an unknown type (naming
    `field`), 403 for a role too low."""
    contract = WORKFLOW_CONTRACTS.get(wf_type)
    if contract is None:
        raise InvalidInputError(
            f"unknown workflow type {wf_type!r}",
            hint=f"use one of {sorted(WORKFLOW_CONTRACTS)}",
            fields=[{"field": field, "message": "unknown workflow type"}],
        )
    if not principal.role.allows(contract.role):
        raise PermissionDeniedError(
            f"{doing} {contract.name} needs the {contract.role.value} role; key "
            f"{principal.name!r} has {principal.role.value}",
            hint=hint,
        )
    return contract


def _validated(contract: WorkflowContract, raw: dict[str, Any]) -> BaseModel:
    try:
        return contract.input_model.model_validate(raw)
    except ValidationError as err:
        fields = field_errors(err.errors(), ("input",))
        raise InvalidInputError(
            f"{len(fields)} invalid field(s) in the input of {contract.name}",
            hint="GET /api/v1/orchestration/workflow-types shows the input schema",
            fields=fields,
        ) from None


def _failure(err: BaseException | None) -> WorkflowFailure | None:
    if err is None:
        return None
    kind = getattr(err, "type", None) or type(err).__name__
    message = err.message if isinstance(err, FailureError) else str(err)
    return WorkflowFailure(message=message, type=str(kind), cause=_failure(err.__cause__))
