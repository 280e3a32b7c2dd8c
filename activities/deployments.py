"""The deployment's record in the store: its state as it goes, and a revision when it succeeds."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio import activity

from core.db.tables import DeploymentRow, RevisionRow, utcnow
from core.models.deployments import FINAL_STATES, DeploymentInput, DeploymentState, DeploymentStatus


class RecordRequest(BaseModel):
    input: DeploymentInput
    status: DeploymentStatus
    workflow_id: str
    run_id: str


class DeploymentActivities:
    def __init__(self, sessions: async_sessionmaker[Any]) -> None:
        self.sessions = sessions

    @activity.defn(name="record-deployment")
    async def record(self, req: RecordRequest) -> None:
        """Upsert the deployment's row (a deployment started from the Temporal UI has none
        yet); on success, add the target's next revision, once."""
        status, inp = req.status, req.input
        now = utcnow()
        async with self.sessions() as session:
            row = await session.get(DeploymentRow, inp.deployment_id)
            if row is None:
                row = DeploymentRow(
                    id=inp.deployment_id,
                    component=inp.component,
                    environment=inp.environment,
                    version=inp.version,
                    strategy=inp.strategy.type,
                    workflow_id=req.workflow_id,
                    initiator=inp.initiator,
                    request=inp.model_dump(mode="json"),
                    rollback_of=inp.rollback_of,
                    created_at=now,
                )
                session.add(row)
            row.run_id = req.run_id
            row.state = status.state.value
            row.status = status.model_dump(mode="json")
            row.reason = status.reason
            row.updated_at = now
            if status.state in FINAL_STATES:
                row.finished_at = status.finished_at or now
            if status.state is DeploymentState.SUCCEEDED:
                await self._add_revision(session, inp)
            await session.commit()

    async def _add_revision(self, session: Any, inp: DeploymentInput) -> None:
        exists = await session.execute(
            select(RevisionRow.id).where(RevisionRow.deployment_id == inp.deployment_id)
        )
        if exists.first() is not None:
            return
        last = (
            await session.execute(
                select(func.max(RevisionRow.revision)).where(
                    RevisionRow.component == inp.component,
                    RevisionRow.environment == inp.environment,
                )
            )
        ).scalar()
        session.add(
            RevisionRow(
                component=inp.component,
                environment=inp.environment,
                revision=(last or 0) + 1,
                version=inp.version,
                env=inp.env,
                replicas=inp.replicas_resolved,
                deployment_id=inp.deployment_id,
                created_at=utcnow(),
            )
        )
