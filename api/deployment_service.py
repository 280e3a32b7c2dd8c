"""Starting deployments: shared by `/api/v1/deployments` and the orchestration API."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.errors import temporal_error
from core.contracts import (
    COMPONENT,
    DEPLOYMENT_PHASE,
    DEPLOYMENT_WORKFLOW,
    ENVIRONMENT,
    INITIATOR,
    STATUS_QUERY,
    STRATEGY,
)
from core.db import components as component_store
from core.db.tables import DeploymentRow, utcnow
from core.deployment_plan import plan_markdown, summary
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.models.apikeys import Principal
from core.models.deployments import (
    FINAL_STATES,
    DeploymentInput,
    DeploymentRequest,
    DeploymentState,
)
from core.settings import Settings

RPC_TIMEOUT = timedelta(seconds=10)
DEPLOYMENT_MEMO = "deployment_id"


def workflow_id(component: str, environment: str) -> str:
    """One deployment per target at a time: the id is the lock."""
    return f"deploy-{component}-{environment}"


async def start_deployment(
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
    principal: Principal,
    req: DeploymentRequest,
    rollback_of: str | None = None,
) -> DeploymentRow:
    """Record the deployment, then start its workflow; a busy target is a 409 that names
    the deployment running there, and then nothing is recorded."""
    try:
        component = await component_store.get_row(session, req.component)
    except NotFoundError:
        raise InvalidInputError(
            f"no component {req.component!r}",
            hint="register it first: POST /api/v1/components",
            fields=[{"field": "body.component", "message": f"no component {req.component!r}"}],
        ) from None
    replicas = req.replicas or int(component.runtime.get("replicas", 1))
    deployment_id = f"dep-{uuid.uuid4().hex[:12]}"
    inp = DeploymentInput(
        **req.model_dump(),
        deployment_id=deployment_id,
        initiator=principal.initiator,
        replicas_resolved=replicas,
        rollback_of=rollback_of,
    )
    wf_id = workflow_id(req.component, req.environment)
    now = utcnow()
    row = DeploymentRow(
        id=deployment_id,
        component=req.component,
        environment=req.environment,
        version=req.version,
        strategy=req.strategy.type,
        state=DeploymentState.PENDING.value,
        workflow_id=wf_id,
        initiator=principal.initiator,
        request=inp.model_dump(mode="json"),
        rollback_of=rollback_of,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.commit()
    tags = TypedSearchAttributes(
        [
            SearchAttributePair(INITIATOR, principal.initiator),
            SearchAttributePair(COMPONENT, req.component),
            SearchAttributePair(ENVIRONMENT, req.environment),
            SearchAttributePair(STRATEGY, req.strategy.type),
            SearchAttributePair(DEPLOYMENT_PHASE, DeploymentState.PENDING.value),
        ]
    )

    async def start() -> WorkflowHandle[Any, Any]:
        return await temporal.start_workflow(
            DEPLOYMENT_WORKFLOW,
            inp,
            id=wf_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=tags,
            memo={DEPLOYMENT_MEMO: deployment_id},
            static_summary=summary(req),
            static_details=plan_markdown(req),
            rpc_timeout=RPC_TIMEOUT,
        )

    try:
        try:
            handle = await start()
        except WorkflowAlreadyStartedError:
            # The one there may have just ended (it answers a final state while it records
            # it): give it a moment to close rather than refuse.
            if not await _closes_soon(temporal, wf_id):
                raise
            handle = await start()
    except WorkflowAlreadyStartedError:
        await _forget(session, row)
        running = await _running_deployment(temporal, wf_id)
        raise ConflictError(
            f"{req.component} is already being deployed to {req.environment}: {running}",
            hint=f"wait for it, or abort it: POST /api/v1/deployments/{running}/abort",
            running=running,
        ) from None
    except (RPCError, RuntimeError) as err:
        await _forget(session, row)
        if isinstance(err, RPCError):
            raise temporal_error(err, "deployment") from err
        raise
    row.run_id = handle.result_run_id
    await session.commit()
    return row


async def _forget(session: AsyncSession, row: DeploymentRow) -> None:
    await session.delete(row)
    await session.commit()


async def _closes_soon(temporal: Client, wf_id: str, within: float = 5.0) -> bool:
    handle = temporal.get_workflow_handle(wf_id)
    try:
        status = await handle.query(STATUS_QUERY, rpc_timeout=timedelta(seconds=3))
    except Exception:
        return False
    if status.get("state") not in {s.value for s in FINAL_STATES}:
        return False
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        desc = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return True
        await asyncio.sleep(0.05)
    return False


async def _running_deployment(temporal: Client, wf_id: str) -> str:
    try:
        desc = await temporal.get_workflow_handle(wf_id).describe(rpc_timeout=RPC_TIMEOUT)
        memo = await desc.memo()
        return str(memo.get(DEPLOYMENT_MEMO) or wf_id)
    except RPCError:
        return wf_id
