"""The schedules the system makes for itself: today, the component health check.

`ensure_default_schedules` is idempotent and safe to run from several processes at once: it
creates a missing schedule, leaves an existing one alone (an operator may have paused it or
written a note on it) unless its interval or what it starts differs from the settings, and
removes it when the setting is 0. The worker process runs it at start (`r2c worker`, and so
`r2c up`), because every deployment of the system runs a worker and the schedule is useless
without one; anything else holding a client and the settings may call it too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from core.contracts import HEALTH_CHECK_WORKFLOW, INITIATOR
from core.ids import schedule_id
from core.models.health import HealthCheckInput
from core.settings import Settings

log = logging.getLogger(__name__)

# Names starting with `system-` are refused by the schedules API (core/models/schedules.py),
# so no user's schedule can take this one's id; GET /api/v1/schedules still lists it.
HEALTH_CHECK_SCHEDULE = "system-health-check"
HEALTH_CHECK_SCHEDULE_ID = schedule_id(HEALTH_CHECK_SCHEDULE)
# A run stuck on a task queue no worker serves would block the next ones forever (overlap
# SKIP); past this it times out and the schedule goes on.
RUN_TIMEOUT = timedelta(minutes=15)
# After an outage, one catch-up run is enough: missed health checks have no value.
CATCHUP_WINDOW = timedelta(minutes=1)
CREATOR = "system:default-schedules"
NOTE = (
    "Default schedule of r2c: probes the instances of every component and records each"
    " component's health (GET /api/v1/components/{id}). Pause it here to stop the checks;"
    " health_check_every_seconds (R2C_HEALTH_CHECK_EVERY_SECONDS) sets the interval, 0"
    " removes it."
)


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    ABSENT = "absent"


@dataclass(frozen=True)
class Ensured:
    """What `ensure_default_schedules` did to one schedule."""

    schedule_id: str
    outcome: Outcome
    every_seconds: int


def health_check_initiator() -> str:
    """The `Initiator` search attribute of the runs the default schedule starts (the same
    shape as the runs of schedules made through the API)."""
    return f"schedule:{HEALTH_CHECK_SCHEDULE}"


def _spec(every_seconds: int) -> ScheduleSpec:
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=every_seconds))])


def _action(settings: Settings) -> ScheduleActionStartWorkflow:
    return ScheduleActionStartWorkflow(
        HEALTH_CHECK_WORKFLOW,
        HealthCheckInput(),
        id=HEALTH_CHECK_SCHEDULE_ID,
        task_queue=settings.task_queue,
        execution_timeout=RUN_TIMEOUT,
        typed_search_attributes=TypedSearchAttributes(
            [SearchAttributePair(INITIATOR, health_check_initiator())]
        ),
        static_summary="health check of every component (default schedule)",
    )


def health_check_schedule(settings: Settings) -> Schedule:
    """The default health-check schedule as the settings want it."""
    return Schedule(
        action=_action(settings),
        spec=_spec(settings.health_check_every_seconds),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(note=NOTE),
    )


def _differs(current: Schedule, settings: Settings) -> bool:
    """Only what the settings decide counts: the interval, and the action's workflow type and
    task queue (what an operator may change, pausing and notes, is not compared)."""
    spec = current.spec
    every = [i.every for i in spec.intervals]
    wanted = [timedelta(seconds=settings.health_check_every_seconds)]
    if every != wanted or spec.calendars or spec.cron_expressions:
        return True
    action = current.action
    return not (
        isinstance(action, ScheduleActionStartWorkflow)
        and action.workflow == HEALTH_CHECK_WORKFLOW
        and action.task_queue == settings.task_queue
    )


async def ensure_health_check_schedule(client: Client, settings: Settings) -> Ensured:
    """Make the default health-check schedule match the settings (see the module)."""
    every = settings.health_check_every_seconds
    handle = client.get_schedule_handle(HEALTH_CHECK_SCHEDULE_ID)
    if every == 0:
        try:
            await handle.delete()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return Ensured(HEALTH_CHECK_SCHEDULE_ID, Outcome.ABSENT, every)
            raise
        return Ensured(HEALTH_CHECK_SCHEDULE_ID, Outcome.DELETED, every)
    try:
        await client.create_schedule(
            HEALTH_CHECK_SCHEDULE_ID, health_check_schedule(settings), memo={"created_by": CREATOR}
        )
        return Ensured(HEALTH_CHECK_SCHEDULE_ID, Outcome.CREATED, every)
    except ScheduleAlreadyRunningError:
        pass
    changed = False

    def update(given: ScheduleUpdateInput) -> ScheduleUpdate | None:
        nonlocal changed
        current = given.description.schedule
        changed = _differs(current, settings)
        if not changed:
            return None
        wanted = health_check_schedule(settings)
        # The state (paused or not, the operator's note) stays as the operator left it.
        wanted.state = current.state
        return ScheduleUpdate(schedule=wanted)

    await handle.update(update)
    return Ensured(
        HEALTH_CHECK_SCHEDULE_ID, Outcome.UPDATED if changed else Outcome.UNCHANGED, every
    )


async def ensure_default_schedules(client: Client, settings: Settings) -> list[Ensured]:
    """Create, update or remove every default schedule as the settings say; logs each."""
    done = [await ensure_health_check_schedule(client, settings)]
    for ensured in done:
        log.info(
            "default schedule %s: %s",
            ensured.schedule_id,
            ensured.outcome.value,
            extra={"schedule": ensured.schedule_id, "every_seconds": ensured.every_seconds},
        )
    return done
