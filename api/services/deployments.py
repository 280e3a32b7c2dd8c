"""Deployments: reading them (live while they run), steering them, retrying and rolling back."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.gateway import Gateway, mapped
from api.schemas import (
    DeploymentLinks,
    DeploymentPage,
    DeploymentView,
    DesiredState,
    Revision,
    RollbackRequest,
    SignalRecord,
)
from api.scope_checks import readable_page
from api.services import audit, redaction
from api.services.deployment_start import Started, idempotent_deployment_id, start_deployment
from core.contracts import STATUS_QUERY
from core.db import deployments as store
from core.db.tables import DeploymentRow, RevisionRow
from core.errors import ConflictError, DependencyUnavailableError, NotFoundError
from core.models.apikeys import Principal
from core.models.deployments import (
    FINAL_STATES,
    ActionRequest,
    BlueGreenStrategy,
    DeploymentInput,
    DeploymentRequest,
    DeploymentState,
    DeploymentStatus,
)
from core.settings import Settings

Action = Literal["promote", "pause", "resume", "abort", "approve"]
DESIRED_ACTIONS: dict[str, Action] = {
    "paused": "pause",
    "resumed": "resume",
    "promoted": "promote",
    "aborted": "abort",
}


class DeploymentService:
    """Reads, starts and steers deployments; every change is audited."""

    def __init__(
        self, session: AsyncSession, gateway: Gateway, settings: Settings, root_path: str = ""
    ) -> None:
        self.session = session
        self.gateway = gateway
        self.settings = settings
        self.root_path = root_path

    def view(self, row: DeploymentRow) -> DeploymentView:
        """The row as the API shows it (no request, so no environment values)."""
        s = self.settings
        ui = f"{s.temporal_ui}/namespaces/{s.temporal_namespace}/workflows"
        config_revision = _config_revision(row)
        status = DeploymentStatus.model_validate(row.status) if row.status else None
        if status is not None and status.config_revision is None:
            status.config_revision = config_revision
        return DeploymentView(
            id=row.id,
            component=row.component,
            environment=row.environment,
            version=row.version,
            strategy=row.strategy,
            state=DeploymentState(row.state),
            initiator=row.initiator,
            rollback_of=row.rollback_of,
            config_revision=config_revision,
            reason=row.reason,
            created_at=row.created_at,
            finished_at=row.finished_at,
            status=status,
            links=DeploymentLinks(
                self=f"{self.root_path}/api/v1/deployments/{row.id}",
                temporal_ui=f"{ui}/{row.workflow_id}/{row.run_id or ''}",
            ),
        )

    async def start(
        self,
        principal: Principal,
        req: DeploymentRequest,
        deployment_id: str | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Started:
        """Start a deployment (see `start_deployment`); its id is `deployment_id`, else one
        derived from the caller's key and `idempotency_key`, else a new one."""
        if deployment_id is None and idempotency_key:
            deployment_id = idempotent_deployment_id(principal, idempotency_key)
        return await start_deployment(
            self.session,
            self.gateway,
            self.settings,
            principal,
            req,
            deployment_id=deployment_id,
            **options,
        )

    async def get(self, deployment_id: str) -> DeploymentView:
        """The deployment with its status: live from the workflow while it runs."""
        row = await store.get(self.session, deployment_id)
        view = self.view(row)
        if view.state not in FINAL_STATES and row.run_id:
            try:
                live = await self.gateway.query(
                    row.workflow_id, row.run_id, STATUS_QUERY, DeploymentStatus
                )
            except Exception:  # no worker answered: the recorded status stands
                return view
            live.config_revision = view.config_revision
            view.status, view.state, view.reason = live, live.state, live.reason
            view.finished_at = live.finished_at
        return view

    async def signals(self, deployment_id: str) -> list[SignalRecord]:
        """Who sent which signal to the deployment (from the Temporal UI, mostly)."""
        row = await store.get(self.session, deployment_id)
        if not row.run_id:
            return []
        got = await self.gateway.signals(row.workflow_id, row.run_id)
        return [SignalRecord(name=name, identity=who, at=at) for name, who, at in got]

    async def page(
        self,
        *,
        component: str | None,
        environment: str | None,
        state: DeploymentState | None,
        limit: int,
        offset: int,
        principal: Principal | None = None,
    ) -> DeploymentPage:
        if principal is not None and not principal.reads_everything:
            rows, total = await readable_page(
                self.session,
                principal,
                component=component,
                environment=environment,
                state=state,
                limit=limit,
                offset=offset,
            )
        else:
            rows, total = await store.page(
                self.session,
                component=component,
                environment=environment,
                state=state,
                limit=limit,
                offset=offset,
            )
        more = offset + len(rows) < total
        return DeploymentPage(
            items=[self.view(r) for r in rows],
            total=total,
            next_offset=offset + limit if more else None,
        )

    async def revisions(
        self, principal: Principal, component: str, environment: str
    ) -> list[Revision]:
        rows = await store.revisions(self.session, component, environment)
        configs = await self._config_revisions(rows)
        out = [Revision.model_validate(r, from_attributes=True) for r in rows]
        for rev in out:
            rev.env = redaction.env(rev.env, principal)
            rev.config_revision = configs.get(rev.deployment_id)
        return out

    async def _config_revisions(self, rows: list[RevisionRow]) -> dict[str, int | None]:
        """The configuration revision each revision's deployment ran (its stored request)."""
        found = await store.many(self.session, [r.deployment_id for r in rows])
        return {row.id: _config_revision(row) for row in found}

    async def act(
        self, principal: Principal, deployment_id: str, action: Action, body: ActionRequest | None
    ) -> DeploymentStatus:
        """Steer a running deployment; 409 says why when its phase does not allow it."""
        row = await store.get(self.session, deployment_id)
        answer = await self._update(row, action, _as_caller(principal, body))
        await audit.commit(self.session, principal, f"deployment.{action}", row.id)
        return answer

    async def set_desired(
        self, principal: Principal, deployment_id: str, body: DesiredState
    ) -> DeploymentStatus:
        req = ActionRequest(full=body.full, reason=body.reason)
        return await self.act(principal, deployment_id, DESIRED_ACTIONS[body.desired], req)

    async def retry(self, principal: Principal, deployment_id: str) -> Started:
        """Start an ended, unsuccessful deployment again, as a new deployment."""
        row = await store.get(self.session, deployment_id)
        if DeploymentState(row.state) not in FINAL_STATES - {DeploymentState.SUCCEEDED}:
            raise ConflictError(
                f"deployment {row.id} is {row.state}; only an ended, unsuccessful one can be "
                "retried",
                hint="steer a running one (promote, resume, abort); deploy again after success",
            )
        original = DeploymentInput.model_validate(row.request)
        req = DeploymentRequest.model_validate(
            original.model_dump(include=set(DeploymentRequest.model_fields))
        )
        if original.config_revision is not None:
            # The retry runs what the original ran, not what was configured since.
            req = req.model_copy(update={"config": original.config_revision})
        return await self.start(principal, req, action="deployment.retried", retry_of=row.id)

    async def rollback(
        self, principal: Principal, deployment_id: str, body: RollbackRequest | None
    ) -> Started | None:
        """Running: abort it, with compensation (None). Ended: redeploy the previous revision
        (or `revision`), by an immediate switch unless a strategy is given."""
        row = await store.get(self.session, deployment_id)
        if DeploymentState(row.state) not in FINAL_STATES:
            abort = _as_caller(principal, ActionRequest(reason="rollback"))
            await self._update(row, "abort", abort)
            await audit.commit(self.session, principal, "deployment.rollback", row.id)
            return None
        body = body or RollbackRequest()
        target = await self._revision_before(row, body.revision)
        ran = await store.find(self.session, target.deployment_id)
        # Code and configuration go back together: the revision's own configuration revision.
        config = _config_revision(ran) if ran is not None else None
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
            config="latest" if config is None else config,
        )
        return await self.start(principal, req, rollback_of=row.id, action="deployment.rollback")

    async def _update(
        self, row: DeploymentRow, action: str, req: ActionRequest
    ) -> DeploymentStatus:
        if DeploymentState(row.state) in FINAL_STATES or not row.run_id:
            raise ConflictError(
                f"deployment {row.id} is {row.state}; it cannot {action}",
                hint="only a running deployment can be steered; GET it to see its state",
            )
        try:
            async with mapped(f"deployment {row.id}"):
                try:
                    answer: DeploymentStatus = await self.gateway.update(
                        row.workflow_id, row.run_id, action, req, DeploymentStatus
                    )
                except RPCError as err:
                    if err.status == RPCStatusCode.DEADLINE_EXCEEDED:
                        raise DependencyUnavailableError(
                            f"no worker answered the {action} of deployment {row.id} in time",
                            hint="check that a worker runs (`r2c worker`), then repeat",
                        ) from None
                    if err.status != RPCStatusCode.NOT_FOUND:
                        raise
                    raise ConflictError(
                        f"deployment {row.id} has finished; it cannot {action}",
                        hint="GET it to see how it ended",
                    ) from None
        except WorkflowUpdateFailedError as err:
            reason = getattr(err.cause, "message", None) or str(err.cause)
            raise ConflictError(
                f"cannot {action} deployment {row.id}: {reason}",
                hint="GET the deployment: its phase says which actions it accepts",
            ) from None
        return answer

    async def _revision_before(self, row: DeploymentRow, wanted: int | None) -> RevisionRow:
        revisions = await store.revisions(self.session, row.component, row.environment)
        if wanted is not None:
            found = next((r for r in revisions if r.revision == wanted), None)
            if found is None:
                raise NotFoundError(
                    f"{row.component}/{row.environment} has no revision {wanted}",
                    hint="GET /api/v1/deployments/revisions lists them",
                )
            return found
        own = next((r for r in revisions if r.deployment_id == row.id), None)
        if own is None:
            raise ConflictError(
                f"deployment {row.id} ended {row.state}: its changes were already undone",
                hint="roll back a succeeded deployment, or pass a revision to go to",
            )
        older = [r for r in revisions if r.revision < own.revision]
        if not older:
            raise ConflictError(
                f"{row.component}/{row.environment} has no revision before {own.revision}",
                hint="there is nothing to roll back to; deploy the version you want instead",
            )
        return older[0]


def _config_revision(row: DeploymentRow) -> int | None:
    value = (row.request or {}).get("config_revision")
    return value if isinstance(value, int) else None


def _as_caller(principal: Principal, body: ActionRequest | None) -> ActionRequest:
    base = body or ActionRequest()
    return base.model_copy(update={"by": principal.initiator, "role": principal.role})
