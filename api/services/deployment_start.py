"""Starting a deployment: the one path for POST /api/v1/deployments, retries, rollbacks and
`type: deployment` through the orchestration API."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.gateway import Gateway, StartPolicy, Tags
from api.services import audit, dependency_checks, exclusion, policies, slo
from core.contracts import DEPLOYMENT_WORKFLOW, STATUS_QUERY
from core.db import audit as audit_store
from core.db import components, configuration, deployments
from core.db.tables import ComponentRow, DeploymentRow, utcnow
from core.deployment_plan import plan_markdown, summary
from core.errors import ConflictError, InvalidInputError, NotFoundError, R2CError
from core.ids import deployment_workflow_id
from core.models.apikeys import Principal
from core.models.deployments import (
    FINAL_STATES,
    DeploymentInput,
    DeploymentRequest,
    DeploymentState,
)
from core.settings import Settings

DEPLOYMENT_MEMO = "deployment_id"


@dataclass(frozen=True)
class Started:
    """The deployment's row; `created` is false when an earlier request with the same id
    had started it."""

    row: DeploymentRow
    created: bool


def scoped_key(principal: Principal, idempotency_key: str) -> str:
    """An Idempotency-Key means something only for the API key that sent it."""
    return hashlib.sha256(f"{principal.key_id}:{idempotency_key}".encode()).hexdigest()[:32]


def idempotent_deployment_id(principal: Principal, idempotency_key: str) -> str:
    """The deployment id a caller's Idempotency-Key stands for."""
    return f"dep-idem-{scoped_key(principal, idempotency_key)}"


async def start_deployment(
    session: AsyncSession,
    gateway: Gateway,
    settings: Settings,
    principal: Principal,
    req: DeploymentRequest,
    *,
    deployment_id: str | None = None,
    rollback_of: str | None = None,
    action: str = "deployment.created",
    config_change: bool = False,
    start_workflow: bool = True,
    **detail: Any,
) -> Started:
    """Record the deployment, then start its workflow. The component is resolved once, to its
    name, whether it was named by id or by name. A busy target is a 409 that names the
    deployment running there, and then nothing is recorded. With `deployment_id`, a repeat of
    the same request answers the deployment it started; a different request is a 409. The
    environment's policy adds the gates it requires to the plan, and refuses (403) what it
    forbids; the roll-out of a configuration change (`config_change`) waits for an approval
    where the policy says such changes need one."""
    component = await _component(session, req.component)
    req = req.model_copy(update={"component": component.name})
    slo.refuse_undeclared_slos(component, req)
    await dependency_checks.refuse_unsatisfied(
        session, component, req.environment, rollback=rollback_of is not None
    )
    req, policy = await policies.planned_deployment(session, req, config_change=config_change)
    config_revision = await _config_revision(session, req)
    if deployment_id is not None:
        existing = await deployments.find(session, deployment_id)
        if existing is not None:
            row = _same_request(existing, req)
            if await _interrupted(session, row, action):
                await _finish_start(session, gateway, principal, row, req, action, start_workflow)
            return Started(row, created=False)
    detail |= policies.enforce_deployment(policy, principal, req, rollback_of=rollback_of)
    # The exclusive section (api.services.exclusion): the lock, the retire check, the row.
    component = await _component(session, component.id, lock=True)
    await exclusion.refuse_while_retiring(gateway, component.name, req.environment)
    row = _new_row(settings, principal, component, req, deployment_id, rollback_of, config_revision)
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        existing = await deployments.find(session, row.id)
        if existing is None:
            raise
        return Started(_same_request(existing, req), created=False)
    if start_workflow:
        handle = await _start_workflow(session, gateway, row, req)
        row.run_id = handle.result_run_id
    # else: a release starts it as its child workflow (activities/releases.py)
    await audit.commit(
        session,
        principal,
        action,
        row.id,
        component=row.component,
        environment=row.environment,
        version=row.version,
        workflow_id=row.workflow_id,
        run_id=row.run_id,
        rollback_of=rollback_of,
        config_revision=config_revision,
        **detail,
    )
    return Started(row, created=True)


# A start that recorded its row this long ago and still has no audit event was interrupted
# (its process died between the two); a younger one may still be under way in another request.
INTERRUPTED_AFTER = timedelta(seconds=15)


async def _interrupted(session: AsyncSession, row: DeploymentRow, action: str) -> bool:
    """The attempt that recorded `row` died before it audited the start (a worker SIGKILLed
    in a scheduled start's activity, whose retry comes here with the same id)."""
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    if utcnow() - created < INTERRUPTED_AFTER:
        return False
    where = audit_store.EventFilter(action=action, target=row.id)
    return not await audit_store.find(session, where, limit=1)


async def _finish_start(
    session: AsyncSession,
    gateway: Gateway,
    principal: Principal,
    row: DeploymentRow,
    req: DeploymentRequest,
    action: str,
    start_workflow: bool,
) -> None:
    """Do what the interrupted attempt left undone: start the workflow unless it runs (or
    ran: the workflow records its run id), then audit the start, once."""
    if start_workflow and row.run_id is None:
        row.run_id = await _run_of(gateway, row) or (
            (await _start_workflow(session, gateway, row, req)).result_run_id
        )
    await audit.commit(
        session,
        principal,
        action,
        row.id,
        component=row.component,
        environment=row.environment,
        version=row.version,
        workflow_id=row.workflow_id,
        run_id=row.run_id,
        rollback_of=row.rollback_of,
        resumed_after_interruption=True,
    )


async def _run_of(gateway: Gateway, row: DeploymentRow) -> str | None:
    """The run of the target's workflow id that is this deployment, if it is the latest."""
    try:
        desc = await gateway.describe(row.workflow_id)
        memo = await desc.memo()
    except NotFoundError:
        return None
    except R2CError:  # a memo this system cannot read is not one it wrote
        return None
    return desc.run_id if memo.get(DEPLOYMENT_MEMO) == row.id else None


async def _config_revision(session: AsyncSession, req: DeploymentRequest) -> int:
    """The configuration revision the deployment runs: the newest that affects the target,
    or the one asked for, which cannot be newer than that (a later one would change what
    it means once someone writes it)."""
    newest = await configuration.latest_revision(session, req.component, req.environment)
    if req.config == "latest":
        return newest
    if req.config > newest:
        message = (
            f"configuration revision {req.config} does not exist for "
            f"{req.component}/{req.environment}: the newest is {newest}"
        )
        raise InvalidInputError(
            message,
            hint=f'use "latest" or a revision up to {newest}; GET /api/v1/configuration'
            f"?component={req.component}&environment={req.environment} shows the newest",
            fields=[{"field": "body.config", "message": message}],
        )
    return req.config


async def _component(session: AsyncSession, ref: str, *, lock: bool = False) -> ComponentRow:
    try:
        return await (components.lock if lock else components.get_row)(session, ref)
    except NotFoundError:
        raise InvalidInputError(
            f"no component {ref!r}",
            hint="register it first: POST /api/v1/components",
            fields=[{"field": "body.component", "message": f"no component {ref!r}"}],
        ) from None


def _same_request(existing: DeploymentRow, req: DeploymentRequest) -> DeploymentRow:
    stored = {k: v for k, v in existing.request.items() if k in DeploymentRequest.model_fields}
    if DeploymentRequest.model_validate(stored).model_dump(mode="json") != req.model_dump(
        mode="json"
    ):
        raise ConflictError(
            f"deployment {existing.id!r} exists with a different request",
            hint="an id or Idempotency-Key may only be reused for the same request; "
            "use a new one for a new deployment",
        )
    return existing


def _new_row(
    settings: Settings,
    principal: Principal,
    component: ComponentRow,
    req: DeploymentRequest,
    deployment_id: str | None,
    rollback_of: str | None,
    config_revision: int,
) -> DeploymentRow:
    inp = DeploymentInput(
        **req.model_dump(),
        deployment_id=deployment_id or f"dep-{uuid.uuid4().hex[:12]}",
        initiator=principal.initiator,
        replicas_resolved=req.replicas or int(component.runtime.get("replicas", 1)),
        rollback_of=rollback_of,
        config_revision=config_revision,
        ui_actions=settings.ui_actions,
    )
    now = utcnow()
    return DeploymentRow(
        id=inp.deployment_id,
        component=req.component,
        environment=req.environment,
        version=req.version,
        strategy=req.strategy.type,
        state=DeploymentState.PENDING.value,
        workflow_id=deployment_workflow_id(req.component, req.environment),
        initiator=principal.initiator,
        request=inp.model_dump(mode="json"),
        rollback_of=rollback_of,
        created_at=now,
        updated_at=now,
    )


async def _start_workflow(
    session: AsyncSession, gateway: Gateway, row: DeploymentRow, req: DeploymentRequest
) -> WorkflowHandle[Any, Any]:
    async def start() -> WorkflowHandle[Any, Any]:
        return await gateway.start(
            DEPLOYMENT_WORKFLOW,
            DeploymentInput.model_validate(row.request),
            workflow_id=row.workflow_id,
            policy=StartPolicy.EXCLUSIVE,
            tags=Tags(
                initiator=row.initiator,
                component=row.component,
                environment=row.environment,
                strategy=row.strategy,
                phase=DeploymentState.PENDING.value,
            ),
            memo={DEPLOYMENT_MEMO: row.id},
            summary=summary(req),
            details=plan_markdown(req),
        )

    try:
        try:
            return await start()
        except WorkflowAlreadyStartedError:
            # The one there may have just ended (it answers a final state while it records
            # it): give it a moment to close rather than refuse.
            if not await _closes_soon(gateway, row.workflow_id):
                raise
            return await start()
    except WorkflowAlreadyStartedError:
        await _forget(session, row)
        running = await _running_deployment(gateway, row.workflow_id)
        raise ConflictError(
            f"{row.component} is already being deployed to {row.environment}: {running}",
            hint=f"wait for it, or abort it: POST /api/v1/deployments/{running}/abort",
            running=running,
        ) from None
    except (R2CError, RuntimeError):
        await _forget(session, row)
        raise


async def _forget(session: AsyncSession, row: DeploymentRow) -> None:
    await session.delete(row)
    await session.commit()


async def _closes_soon(gateway: Gateway, workflow_id: str, within: float = 5.0) -> bool:
    try:
        status = await gateway.query(workflow_id, None, STATUS_QUERY)
    except Exception:  # no worker answered: it is not about to close
        return False
    if status.get("state") not in {s.value for s in FINAL_STATES}:
        return False
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        desc = await gateway.describe(workflow_id)
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return True
        await asyncio.sleep(0.05)
    return False


async def _running_deployment(gateway: Gateway, workflow_id: str) -> str:
    try:
        memo = await (await gateway.describe(workflow_id)).memo()
        return str(memo.get(DEPLOYMENT_MEMO) or workflow_id)
    except R2CError:
        return workflow_id
