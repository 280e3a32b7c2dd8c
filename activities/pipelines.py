"""The activities of a pipeline run: its gates read from the store, each stage's release
prepared exactly as the releases API prepares one (acting as `pipeline:<name>`), verified
combinations and holds recorded.

The same departure from the layering as activities/releases.py: a stage's release must follow
the rules of `api/services/releases.py` (scope, graph, store row, audit), so this uses it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client

from activities.pipeline_policy import policy_gate
from api.gateway import Gateway
from api.services.releases import ReleaseService
from core.db import audit, line_stops
from core.db import pipelines as store
from core.db import releases as release_store
from core.db.pipelines_tables import PipelineHoldRow
from core.db.tables import DeploymentRow
from core.errors import NotFoundError, R2CError
from core.models.apikeys import Principal, Role
from core.models.deployments import DeploymentState
from core.models.pipelines import (
    CHECK_GATES_ACTIVITY,
    PREPARE_RELEASE_ACTIVITY,
    RECORD_RUN_ACTIVITY,
    RECORD_VERIFIED_ACTIVITY,
    GateAnswer,
    GateCheck,
    LastVerified,
    PreparedStage,
    PrepareStage,
    RunStatus,
    VerifiedRecord,
)
from core.models.releases import ReleaseInput, ReleaseRequest
from core.settings import Settings


class PipelinePrincipal(Principal):
    """The identity a pipeline's releases act as: `pipeline:<name>`, an operator."""

    @property
    def initiator(self) -> str:
        return f"pipeline:{self.name}"


def pipeline_principal(pipeline: str) -> PipelinePrincipal:
    return PipelinePrincipal(key_id=f"pipeline:{pipeline}", name=pipeline, role=Role.OPERATOR)


def _refusal(err: R2CError) -> str:
    if err.http_status >= 500 or err.http_status == 429:
        raise err  # the store or Temporal away: worth a retry
    return err.message if not err.hint else f"{err.message} ({err.hint})"


async def manual_change(session: AsyncSession, pipeline: str, environment: str) -> str | None:
    """Why the environment no longer runs its verified combination because of a person (a
    rollback, or a deployment by hand of another version since), or None.

    The least invasive detection: nothing hooks the rollback route; before promoting, the
    pipeline compares each component's newest finished deployment there with the verified
    combination. A deployment by a release (a pipeline's own) is automation, not a person."""
    verified = await store.current(session, pipeline, environment)
    if verified is None:
        return None
    earlier = await store.hold_row(session, pipeline, environment)
    released = earlier.released_at if earlier is not None else None
    for component, version in sorted(verified.components.items()):
        query = (
            select(DeploymentRow)
            .where(
                DeploymentRow.component == component,
                DeploymentRow.environment == environment,
                DeploymentRow.state == DeploymentState.SUCCEEDED.value,
            )
            .order_by(DeploymentRow.created_at.desc())
            .limit(1)
        )
        row = (await session.execute(query)).scalars().first()
        if row is None or row.version == version or row.initiator.startswith("release:"):
            continue
        if row.created_at < verified.verified_at:
            continue
        if released is not None and row.created_at < released:
            continue  # held already, and released by an operator: their decision stands
        how = "rolled back" if row.rollback_of else "deployed by hand"
        return (
            f"{component} was {how} to {row.version} by {row.initiator} "
            f"(deployment {row.id}); the verified combination has {version}"
        )
    return None


class PipelineActivities:
    def __init__(
        self, sessions: async_sessionmaker[Any], client: Client, settings: Settings
    ) -> None:
        self.sessions = sessions
        self.gateway = Gateway(client, settings)
        self.settings = settings

    @activity.defn(name=CHECK_GATES_ACTIVITY)
    async def check_gates(self, req: GateCheck) -> GateAnswer:
        """What the stage's gates need from outside the workflow, read at once."""
        async with self.sessions() as session:
            verified = await store.verified_at(session, req.pipeline, req.components, req.upstream)
            stop = await line_stops.active(session, req.pipeline)
            held = await store.hold(session, req.pipeline, req.environment)
            if held is None and req.auto_promote:
                why = await manual_change(session, req.pipeline, req.environment)
                if why is not None:
                    held = await _hold(session, req.pipeline, req.environment, why, req.now)
            last = await store.current(session, req.pipeline, req.environment)
            policy = (
                await policy_gate(session, req.environment, req.components, req.release_id, req.now)
                if req.release_id is not None
                else None
            )
            await session.commit()
        return GateAnswer(
            verified_at=verified,
            line_stop=f"{stop.reason} (set by {stop.set_by} at {stop.set_at.isoformat()})"
            if stop
            else None,
            hold=f"{held.reason} (since {held.set_at.isoformat()})" if held else None,
            window_wait=req.window.seconds_until_open(req.now) if req.window else 0.0,
            last_verified=LastVerified(
                components=dict(last.components) if last else None,
                rollback=bool(last and last.rollback),
            ),
            policy_refusal=policy.refusal if policy else None,
            policy_frozen=policy.frozen if policy else None,
            policy_until=policy.until if policy else None,
        )

    @activity.defn(name=PREPARE_RELEASE_ACTIVITY)
    async def prepare_release(self, req: PrepareStage) -> PreparedStage:
        """The stage's release row and audit, as the releases API makes them, but not its
        workflow (the run starts it as a child). A retry answers the row the first made."""
        principal = pipeline_principal(req.pipeline)
        release = ReleaseRequest(environment=req.environment, components=req.components)
        inp = ReleaseInput(
            **release.model_dump(),
            release_id=req.release_id,
            initiator=principal.initiator,
            ui_actions=self.settings.ui_actions,
        )
        async with self.sessions() as session:
            try:
                await release_store.get(session, req.release_id)
                return PreparedStage(input=inp.model_dump(mode="json"))
            except NotFoundError:
                pass
            service = ReleaseService(session, self.gateway, self.settings)
            try:
                await service.start(
                    principal, release, release_id=req.release_id, start_workflow=False
                )
            except R2CError as err:
                await session.rollback()
                return PreparedStage(refused=_refusal(err))
        return PreparedStage(input=inp.model_dump(mode="json"))

    @activity.defn(name=RECORD_VERIFIED_ACTIVITY)
    async def record_verified(self, req: VerifiedRecord) -> None:
        """The combination verified in the environment; a person's run that pins an older
        combination there again holds auto-promotion into it."""
        async with self.sessions() as session:
            older = await store.add_verified(
                session,
                req.pipeline,
                req.environment,
                req.components,
                req.run_id,
                req.verified_at,
                rollback=req.rollback,
            )
            if req.hold is not None:
                await _hold(session, req.pipeline, req.environment, req.hold, req.verified_at)
            elif older and not req.rollback:
                why = f"run {req.run_id} pinned an older combination"
                await _hold(session, req.pipeline, req.environment, why, req.verified_at)
            await session.commit()

    @activity.defn(name=RECORD_RUN_ACTIVITY)
    async def record_run(self, status: RunStatus) -> None:
        async with self.sessions() as session:
            await store.record_run(session, status)
            await session.commit()


async def _hold(
    session: AsyncSession, pipeline: str, environment: str, why: str, at: datetime
) -> PipelineHoldRow:
    row = await store.set_hold(session, pipeline, environment, why, f"pipeline:{pipeline}", at)
    await audit.record(
        session,
        actor=f"pipeline:{pipeline}",
        action="pipeline.held",
        target=f"{pipeline}/{environment}",
        detail={"reason": why},
    )
    return row


def pipeline_activities(
    sessions: async_sessionmaker[Any], client: Client, settings: Settings
) -> list[Callable[..., Any]]:
    a = PipelineActivities(sessions, client, settings)
    return [a.check_gates, a.prepare_release, a.record_verified, a.record_run]
