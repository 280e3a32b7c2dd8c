"""The activities of a release: its dependency graph, and each component's deployment prepared
(or rolled back) exactly as the API would, acting as `release:<id>`.

The same departure from the layering as activities/schedules.py: the rules of a start (locks,
policies, the configuration revision, the store row, the audit) live in `api/services`, and a
release's deployments must follow exactly those, so these activities use them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError

from api.gateway import Gateway
from api.services.deployments import DeploymentService
from core.db import audit
from core.db import releases as release_store
from core.db.tables import ComponentRow, DeploymentRow
from core.errors import R2CError
from core.models.apikeys import Principal, Role
from core.models.deployments import DeploymentRequest, DeploymentState, DeploymentStatus
from core.models.releases import (
    AWAIT_DEPLOYMENT_ACTIVITY,
    FORGET_DEPLOYMENT_ACTIVITY,
    PREPARE_DEPLOYMENT_ACTIVITY,
    READ_GRAPH_ACTIVITY,
    RECORD_RELEASE_ACTIVITY,
    START_ROLLBACK_ACTIVITY,
    AwaitAnswer,
    AwaitRequest,
    ForgetRequest,
    GraphAnswer,
    GraphRequest,
    PrepareAnswer,
    PrepareRequest,
    ReleaseStatus,
    RollbackStarted,
    RollbackStartRequest,
)
from core.settings import Settings

HEARTBEAT_SECONDS = 5.0


class ReleasePrincipal(Principal):
    """The identity a release's deployments act as: `release:<id>`, an operator."""

    @property
    def initiator(self) -> str:
        return f"release:{self.name}"


def release_principal(release_id: str) -> ReleasePrincipal:
    return ReleasePrincipal(key_id=f"release:{release_id}", name=release_id, role=Role.OPERATOR)


def _refusal(err: R2CError) -> str:
    """A refusal the release ends with; a store or Temporal away is worth a retry instead."""
    if err.http_status >= 500 or err.http_status == 429:
        raise err
    return err.message if not err.hint else f"{err.message} ({err.hint})"


class ReleaseActivities:
    def __init__(
        self, sessions: async_sessionmaker[Any], client: Client, settings: Settings
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.gateway = Gateway(client, settings)
        self.settings = settings

    @activity.defn(name=READ_GRAPH_ACTIVITY)
    async def read_graph(self, req: GraphRequest) -> GraphAnswer:
        """Every registered component's dependencies (names), and which asked-for ones are
        not registered."""
        async with self.sessions() as session:
            rows = (await session.execute(select(ComponentRow))).scalars().all()
        graph = {r.name: sorted({str(d["component"]) for d in (r.depends_on or [])}) for r in rows}
        return GraphAnswer(graph=graph, unknown=sorted(set(req.components) - set(graph)))

    @activity.defn(name=PREPARE_DEPLOYMENT_ACTIVITY)
    async def prepare(self, req: PrepareRequest) -> PrepareAnswer:
        """The deployment's row, policies, configuration revision and audit, as the API's
        start makes them, but not its workflow: the release starts that as its child. The
        id is the release's for the component, so a retry answers the row the first made."""
        principal = release_principal(req.release_id)
        fields: dict[str, Any] = {
            "component": req.component,
            "environment": req.environment,
            "version": req.version,
            "description": f"release {req.release_id}",
        }
        if req.strategy is not None:
            fields["strategy"] = req.strategy
        request = DeploymentRequest(**fields)
        async with self.sessions() as session:
            service = DeploymentService(session, self.gateway, self.settings)
            try:
                started = await service.start(
                    principal,
                    request,
                    deployment_id=req.deployment_id,
                    start_workflow=False,
                    release=req.release_id,
                )
            except R2CError as err:
                await session.rollback()
                return PrepareAnswer(refused=_refusal(err))
            return PrepareAnswer(input=dict(started.row.request))

    @activity.defn(name=FORGET_DEPLOYMENT_ACTIVITY)
    async def forget(self, req: ForgetRequest) -> None:
        """A prepared deployment whose child could not start: it never ran, so no row. Its
        `deployment.created` event is in the chain already (written when it was prepared, and
        the chain is append-only): `deployment.not_started` says, in the same transaction as
        the row's removal, that it never ran and why."""
        async with self.sessions() as session:
            row = await session.get(DeploymentRow, req.deployment_id)
            if row is not None and row.run_id is None:
                await audit.record(
                    session,
                    actor=row.initiator,
                    action="deployment.not_started",
                    target=row.id,
                    detail={
                        "component": row.component,
                        "environment": row.environment,
                        "version": row.version,
                        "reason": req.reason or "its release did not start it",
                    },
                )
                await session.delete(row)
                await session.commit()

    @activity.defn(name=START_ROLLBACK_ACTIVITY)
    async def start_rollback(self, req: RollbackStartRequest) -> RollbackStarted:
        """The fast rollback of a deployment the release moved (POST /api/v1/deployments/{id}
        /rollback). A retry answers the rollback the first attempt started."""
        principal = release_principal(req.release_id)
        async with self.sessions() as session:
            earlier = (
                (
                    await session.execute(
                        select(DeploymentRow).where(DeploymentRow.rollback_of == req.deployment_id)
                    )
                )
                .scalars()
                .first()
            )
            if earlier is not None:
                return RollbackStarted(
                    deployment_id=earlier.id,
                    workflow_id=earlier.workflow_id,
                    run_id=earlier.run_id,
                )
            service = DeploymentService(session, self.gateway, self.settings)
            try:
                started = await service.rollback(principal, req.deployment_id, None)
            except R2CError as err:
                await session.rollback()
                return RollbackStarted(refused=_refusal(err))
            if started is None:  # it was still running: aborted, with its own compensation
                return RollbackStarted()
            row = started.row
            return RollbackStarted(
                deployment_id=row.id, workflow_id=row.workflow_id, run_id=row.run_id
            )

    @activity.defn(name=RECORD_RELEASE_ACTIVITY)
    async def record(self, status: ReleaseStatus) -> None:
        """The release's state in the store: its plan once made, its outcome at the end."""
        async with self.sessions() as session:
            await release_store.record(session, status)
            await session.commit()

    @activity.defn(name=AWAIT_DEPLOYMENT_ACTIVITY)
    async def await_deployment(self, req: AwaitRequest) -> AwaitAnswer:
        """How a deployment the release started outside itself (a rollback) ended."""
        handle = self.client.get_workflow_handle(
            req.workflow_id, run_id=req.run_id, result_type=DeploymentStatus
        )
        result = asyncio.ensure_future(handle.result())
        try:
            while True:
                done, _ = await asyncio.wait({result}, timeout=HEARTBEAT_SECONDS)
                if done:
                    break
                activity.heartbeat()
            status = result.result()
        except WorkflowFailureError as err:
            return AwaitAnswer(state=DeploymentState.FAILED, reason=str(err.cause or err))
        finally:
            result.cancel()
        return AwaitAnswer(state=status.state, reason=status.reason)


def release_activities(
    sessions: async_sessionmaker[Any], client: Client, settings: Settings
) -> list[Callable[..., Any]]:
    a = ReleaseActivities(sessions, client, settings)
    return [a.read_graph, a.prepare, a.forget, a.start_rollback, a.await_deployment, a.record]
