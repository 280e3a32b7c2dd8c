"""The deployment's record in the store: its state as it goes, and a revision when it succeeds."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio import activity

from core.db import deployments as deployment_store
from core.models.deployments import DeploymentInput, DeploymentStatus


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
        """The deployment's new state in the store, and its revision when it succeeded."""
        async with self.sessions() as session:
            await deployment_store.record(
                session, req.input, req.status, req.workflow_id, req.run_id
            )
            await session.commit()
