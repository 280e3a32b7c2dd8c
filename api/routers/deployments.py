"""`/api/v1/deployments`: start, follow, steer, retry and roll back deployments."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import Operator, Viewer
from api.deployment_service import start_deployment
from api.deps import SessionDep, SettingsDep, TemporalDep
from api.errors import temporal_error
from core.contracts import STATUS_QUERY
from core.db.tables import DeploymentRow, RevisionRow
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.models.apikeys import Principal
from core.models.deployments import (
    FINAL_STATES,
    ActionRequest,
    AnalysisStep,
    BlueGreenStrategy,
    CanaryStrategy,
    DeploymentInput,
    DeploymentRequest,
    DeploymentState,
    DeploymentStatus,
    Strategy,
)
from core.settings import Settings
from core.conditions import ConditionError, validate

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])

QUERY_TIMEOUT = timedelta(seconds=3)


class DeploymentLinks(BaseModel):
    self: str
    temporal_ui: str


class DeploymentView(BaseModel):
    id: str
    component: str
    environment: str
    version: str
    strategy: str
    state: DeploymentState
    initiator: str
    rollback_of: str | None
    reason: str | None
    created_at: datetime
    finished_at: datetime | None
    status: DeploymentStatus | None = Field(None, description="live while it runs")
    links: DeploymentLinks


class DeploymentPage(BaseModel):
    items: list[DeploymentView]
    total: int
    next_offset: int | None


class DesiredState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    desired: Literal["paused", "resumed", "promoted", "aborted"]
    full: bool = False
    reason: str = Field("", max_length=500)


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    revision: int | None = Field(None, ge=1, description="default: the one before")
    strategy: Strategy | None = Field(None, description="default: an immediate switch")


class Revision(BaseModel):
    revision: int
    version: str
    env: dict[str, str]
    replicas: int
    deployment_id: str
    created_at: datetime


def _view(request: Request, settings: Settings, row: DeploymentRow) -> DeploymentView:
    ui = f"{settings.temporal_ui}/namespaces/{settings.temporal_namespace}/workflows"
    return DeploymentView(
        id=row.id,
        component=row.component,
        environment=row.environment,
        version=row.version,
        strategy=row.strategy,
        state=DeploymentState(row.state),
        initiator=row.initiator,
        rollback_of=row.rollback_of,
        reason=row.reason,
        created_at=row.created_at,
        finished_at=row.finished_at,
        status=DeploymentStatus.model_validate(row.status) if row.status else None,
        links=DeploymentLinks(
            self=f"{request.scope.get('root_path', '')}/api/v1/deployments/{row.id}",
            temporal_ui=f"{ui}/{row.workflow_id}/{row.run_id or ''}",
        ),
    )


def check_conditions(req: DeploymentRequest) -> None:
    """Every success/failure condition must parse: a typo is a 422 now, not a failed step."""
    s = req.strategy
    specs: list[tuple[str, Any]] = []
    if isinstance(s, CanaryStrategy):
        specs += [
            (f"body.strategy.steps.{i}.analysis", step.analysis)
            for i, step in enumerate(s.steps)
            if isinstance(step, AnalysisStep)
        ]
        if s.analysis:
            specs.append(("body.strategy.analysis", s.analysis))
    elif isinstance(s, BlueGreenStrategy):
        for name in ("pre_promotion_analysis", "post_promotion_analysis"):
            if getattr(s, name):
                specs.append((f"body.strategy.{name}", getattr(s, name)))
    fields = []
    for where, spec in specs:
        for j, metric in enumerate(spec.metrics):
            for cond in ("success_condition", "failure_condition"):
                text = getattr(metric, cond)
                if text is None:
                    continue
                try:
                    validate(text)
                except ConditionError as err:
                    fields.append({"field": f"{where}.metrics.{j}.{cond}", "message": str(err)})
    if fields:
        raise InvalidInputError(
            f"{len(fields)} invalid condition(s)",
            hint="conditions compare `result` with numbers, e.g. `result > 0.05`",
            fields=fields,
        )


async def _row(session: AsyncSession, deployment_id: str) -> DeploymentRow:
    row = await session.get(DeploymentRow, deployment_id)
    if row is None:
        raise NotFoundError(
            f"no deployment {deployment_id!r}", hint="GET /api/v1/deployments lists them"
        )
    return row


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=DeploymentView)
async def create_deployment(
    body: DeploymentRequest,
    request: Request,
    response: Response,
    principal: Operator,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> DeploymentView:
    """Deploy a version of a component to an environment with a strategy."""
    check_conditions(body)
    row = await start_deployment(session, temporal, settings, principal, body)
    view = _view(request, settings, row)
    response.headers["Location"] = view.links.self
    return view


@router.get("", response_model=DeploymentPage)
async def list_deployments(
    request: Request,
    _: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    component: Annotated[str | None, Query()] = None,
    environment: Annotated[str | None, Query()] = None,
    state: Annotated[DeploymentState | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DeploymentPage:
    """Newest first; filter by component, environment and status."""
    query = select(DeploymentRow)
    if component:
        query = query.where(DeploymentRow.component == component)
    if environment:
        query = query.where(DeploymentRow.environment == environment)
    if state:
        query = query.where(DeploymentRow.state == state.value)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar()
    rows = (
        await session.execute(
            query.order_by(DeploymentRow.created_at.desc()).limit(limit).offset(offset)
        )
    ).scalars()
    items = [_view(request, settings, r) for r in rows]
    more = offset + len(items) < (total or 0)
    return DeploymentPage(
        items=items, total=total or 0, next_offset=offset + limit if more else None
    )


@router.get("/revisions", response_model=list[Revision])
async def list_revisions(
    _: Viewer,
    session: SessionDep,
    component: Annotated[str, Query()],
    environment: Annotated[str, Query()],
) -> list[Revision]:
    """What ran after each successful deployment of a target, newest first."""
    rows = (
        await session.execute(
            select(RevisionRow)
            .where(RevisionRow.component == component, RevisionRow.environment == environment)
            .order_by(RevisionRow.revision.desc())
        )
    ).scalars()
    return [Revision.model_validate(r, from_attributes=True) for r in rows]


@router.get("/{deployment_id}", response_model=DeploymentView, name="get_deployment")
async def get_deployment(
    deployment_id: str,
    request: Request,
    _: Viewer,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> DeploymentView:
    """The deployment with its status: live from the workflow while it runs."""
    row = await _row(session, deployment_id)
    view = _view(request, settings, row)
    if view.state not in FINAL_STATES and row.run_id:
        handle = temporal.get_workflow_handle(row.workflow_id, run_id=row.run_id)
        try:
            live = await handle.query(
                STATUS_QUERY, result_type=DeploymentStatus, rpc_timeout=QUERY_TIMEOUT
            )
            view.status, view.state, view.reason = live, live.state, live.reason
            view.finished_at = live.finished_at
        except Exception:  # no worker answered: the recorded status stands
            pass
    return view


async def _act(
    temporal: Client, row: DeploymentRow, action: str, req: ActionRequest
) -> DeploymentStatus:
    if DeploymentState(row.state) in FINAL_STATES or not row.run_id:
        raise ConflictError(f"deployment {row.id} is {row.state}; it cannot {action}")
    handle = temporal.get_workflow_handle(row.workflow_id, run_id=row.run_id)
    try:
        answer: DeploymentStatus = await handle.execute_update(
            action, req, result_type=DeploymentStatus, rpc_timeout=timedelta(seconds=15)
        )
        return answer
    except WorkflowUpdateFailedError as err:
        reason = getattr(err.cause, "message", None) or str(err.cause)
        raise ConflictError(f"cannot {action} deployment {row.id}: {reason}") from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ConflictError(f"deployment {row.id} has finished; it cannot {action}") from None
        raise temporal_error(err, f"deployment {row.id}") from err


def _action_request(principal: Principal, body: ActionRequest | None) -> ActionRequest:
    base = body or ActionRequest()
    return base.model_copy(update={"by": principal.initiator, "role": principal.role})


@router.put("/{deployment_id}", response_model=DeploymentStatus)
async def set_desired_state(
    deployment_id: str,
    body: DesiredState,
    principal: Operator,
    session: SessionDep,
    temporal: TemporalDep,
) -> DeploymentStatus:
    """Change the desired state: paused, resumed, promoted or aborted."""
    action = {"paused": "pause", "resumed": "resume", "promoted": "promote", "aborted": "abort"}
    req = ActionRequest(full=body.full, reason=body.reason)
    row = await _row(session, deployment_id)
    return await _act(temporal, row, action[body.desired], _action_request(principal, req))


@router.post(
    "/{deployment_id}/retry", status_code=status.HTTP_202_ACCEPTED, response_model=DeploymentView
)
async def retry(
    deployment_id: str,
    request: Request,
    principal: Operator,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> DeploymentView:
    """Start a failed, aborted or rolled-back deployment again, as a new deployment."""
    row = await _row(session, deployment_id)
    if DeploymentState(row.state) not in FINAL_STATES - {DeploymentState.SUCCEEDED}:
        raise ConflictError(
            f"deployment {row.id} is {row.state}; only an ended, unsuccessful one can be retried"
        )
    original = DeploymentInput.model_validate(row.request)
    req = DeploymentRequest.model_validate(
        original.model_dump(include=set(DeploymentRequest.model_fields))
    )
    new = await start_deployment(session, temporal, settings, principal, req)
    return _view(request, settings, new)


@router.post("/{deployment_id}/rollback", response_model=DeploymentView)
async def rollback(
    deployment_id: str,
    request: Request,
    response: Response,
    principal: Operator,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    body: RollbackRequest | None = None,
) -> DeploymentView:
    """Running: abort it, with compensation. Ended: redeploy the previous revision (or
    `revision`) by the fast path, an immediate switch with no steps unless a strategy is given."""
    row = await _row(session, deployment_id)
    if DeploymentState(row.state) not in FINAL_STATES:
        await _act(
            temporal, row, "abort", _action_request(principal, ActionRequest(reason="rollback"))
        )
        return _view(request, settings, row)
    body = body or RollbackRequest()
    target = await _revision_before(session, row, body.revision)
    strategy = body.strategy or BlueGreenStrategy(
        scale_down_delay_seconds=0, abort_scale_down_delay_seconds=0
    )
    req = DeploymentRequest(
        component=row.component,
        environment=row.environment,
        version=target.version,
        env=target.env,
        replicas=target.replicas,
        strategy=strategy,
        description=f"rollback of {row.id} to revision {target.revision}",
    )
    new = await start_deployment(session, temporal, settings, principal, req, rollback_of=row.id)
    response.status_code = status.HTTP_202_ACCEPTED
    return _view(request, settings, new)


async def _revision_before(
    session: AsyncSession, row: DeploymentRow, wanted: int | None
) -> RevisionRow:
    query = select(RevisionRow).where(
        RevisionRow.component == row.component, RevisionRow.environment == row.environment
    )
    if wanted is not None:
        found = (await session.execute(query.where(RevisionRow.revision == wanted))).scalar()
        if found is None:
            raise NotFoundError(f"{row.component}/{row.environment} has no revision {wanted}")
        return found
    revisions = list((await session.execute(query.order_by(RevisionRow.revision.desc()))).scalars())
    own = next((r for r in revisions if r.deployment_id == row.id), None)
    if own is None:
        raise ConflictError(
            f"deployment {row.id} ended {row.state}: its changes were already undone",
            hint="roll back a succeeded deployment, or pass a revision to go to",
        )
    older = [r for r in revisions if r.revision < own.revision]
    if not older:
        raise ConflictError(
            f"{row.component}/{row.environment} has no revision before {own.revision}"
        )
    return older[0]


@router.post("/{deployment_id}/{action}", response_model=DeploymentStatus)
async def act(
    deployment_id: str,
    action: Literal["promote", "pause", "resume", "abort", "approve"],
    principal: Operator,
    session: SessionDep,
    temporal: TemporalDep,
    body: ActionRequest | None = None,
) -> DeploymentStatus:
    """Steer a running deployment; 409 says why when its phase does not allow the action."""
    row = await _row(session, deployment_id)
    return await _act(temporal, row, action, _action_request(principal, body))
