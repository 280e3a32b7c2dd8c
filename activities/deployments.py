"""The deployment's record in the store: its state as it goes, and a revision when it succeeds;
in the same transaction, the notification its state change is (docs/notifications.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio import activity
from temporalio.client import Client

from activities.deployment_events import event_data, event_of
from core import notify
from core.db import deployments as deployment_store
from core.models.deployments import DeploymentInput, DeploymentState, DeploymentStatus


class RecordRequest(BaseModel):
    input: DeploymentInput
    status: DeploymentStatus
    workflow_id: str
    run_id: str


class DeploymentActivities:
    """Holds the store's sessions and the Temporal client that wakes notification deliveries
    (None: the events are queued, and delivered when something else wakes them)."""

    def __init__(self, sessions: async_sessionmaker[Any], client: Client | None = None) -> None:
        self.sessions = sessions
        self.client = client

    @activity.defn(name="record-deployment")
    async def record(self, req: RecordRequest) -> None:
        """The deployment's new state in the store, and its revision when it succeeded."""
        async with self.sessions() as session:
            row = await deployment_store.find(session, req.input.deployment_id)
            previous = DeploymentState(row.state) if row is not None and row.state else None
            await deployment_store.record(
                session, req.input, req.status, req.workflow_id, req.run_id
            )
            woken: list[str] = []
            event = event_of(previous, req.status)
            if event is not None:
                # One record call, one event id: a retry of this activity (same run, same
                # activity id) queues nothing twice.
                call = activity.info().activity_id if activity.in_activity() else "direct"
                event_id = f"{req.input.deployment_id}:{req.status.state.value}:{req.run_id}:{call}"
                woken = await notify.emit(
                    session,
                    event.value,
                    event_id=event_id,
                    subject=f"deployments/{req.input.deployment_id}",
                    data=event_data(req.status),
                    component=req.input.component,
                    environment=req.input.environment,
                )
            await session.commit()
        if self.client is not None:
            await notify.wake(self.client, woken)
