"""The activity of scheduled starts: the API's own start logic, acting as `schedule:<id>`.

A departure from the layering (DESIGN.md: nothing imports `api/`): the rules of a start
(locks, policies, the store row, the audit) live in `api/services`, and a scheduled start must
follow exactly those, so this activity uses them rather than a copy. Moving the start rules
into a service layer under `core/` that both import is the clean way out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio import activity
from temporalio.client import Client

from api.gateway import Gateway
from api.schemas import WorkflowStartRequest
from api.services.components import ComponentService
from api.services.deployments import DeploymentService
from api.services.line_stops import HALTED_TYPES, refuse_if_stopped
from api.services.orchestration import WorkflowService
from api.services.policy_refusals import record_refusal
from core import notify
from core.errors import R2CError
from core.models.apikeys import Role
from core.models.schedules import (
    START_SCHEDULED_ACTIVITY,
    ScheduledStartInput,
    ScheduledStartResult,
    SchedulePrincipal,
)
from core.settings import Settings

SKIPPED_EVENT = "schedule.skipped"


class ScheduleActivities:
    """Holds the store, the Temporal client and the settings the start logic needs."""

    def __init__(
        self, sessions: async_sessionmaker[Any], client: Client, settings: Settings
    ) -> None:
        self.sessions = sessions
        self.gateway = Gateway(client, settings)
        self.client = client
        self.settings = settings

    @activity.defn(name=START_SCHEDULED_ACTIVITY)
    async def start_scheduled(self, inp: ScheduledStartInput) -> ScheduledStartResult:
        """Start what the schedule names, exactly as the API would. The idempotency key is
        this run's workflow id (the schedule's id plus the scheduled time), so a retried
        attempt answers the deployment the first one started instead of starting a second.
        A refusal the caller could not fix by retrying (busy target, policy, a component
        gone) is a skip with its reason, announced as a `schedule.skipped` notification."""
        run = activity.info().workflow_id or activity.info().activity_id
        principal = SchedulePrincipal(
            key_id=f"schedule:{inp.schedule}", name=inp.schedule, role=Role(inp.role)
        )
        request = WorkflowStartRequest(type=inp.type, input=inp.input)
        async with self.sessions() as session:
            deployments = DeploymentService(session, self.gateway, self.settings)
            components = ComponentService(session, self.gateway)
            service = WorkflowService(session, self.gateway, self.settings, deployments, components)
            try:
                # Stop the line (docs/stop-the-line.md): a schedule is automation, it waits
                # (a health check or another read-only type still runs).
                if inp.type in HALTED_TYPES:
                    what = f"{inp.type} by schedule {inp.schedule}"
                    await refuse_if_stopped(session, None, what)
                started = await service.start(principal, request, run)
            except R2CError as err:
                if err.http_status >= 500 or err.http_status == 429:
                    raise  # the store or Temporal is away: worth a retry
                reason = err.message
                await session.rollback()
                # A freeze window's refusal reaches no client: the trail keeps it (a 403 only).
                await record_refusal(
                    session,
                    principal,
                    err,
                    target="/api/v1/workflows",
                    via=f"schedule:{inp.schedule}",
                    type=inp.type,
                    component=_text(inp.input.get("component")),
                    environment=_text(inp.input.get("environment")),
                )
            else:
                return ScheduledStartResult(
                    outcome="started",
                    workflow_id=started.id,
                    run_id=started.run_id,
                    deployment_id=started.deployment_id,
                )
        await self._announce_skip(inp, run, reason)
        return ScheduledStartResult(outcome="skipped", reason=reason)

    async def _announce_skip(self, inp: ScheduledStartInput, run_id: str, reason: str) -> None:
        async with self.sessions() as session:
            woken = await notify.emit(
                session,
                SKIPPED_EVENT,
                event_id=f"{SKIPPED_EVENT}:{run_id}",
                subject=f"schedule:{inp.schedule}",
                data={"schedule": inp.schedule, "type": inp.type, "run": run_id, "reason": reason},
                component=_text(inp.input.get("component")),
                environment=_text(inp.input.get("environment")),
            )
            await session.commit()
        await notify.wake(self.client, woken)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def schedule_activities(
    sessions: async_sessionmaker[Any], client: Client, settings: Settings
) -> list[Callable[..., Any]]:
    """The activities the worker registers for schedules."""
    return [ScheduleActivities(sessions, client, settings).start_scheduled]
