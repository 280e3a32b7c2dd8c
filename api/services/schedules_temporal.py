"""Our schedule models in Temporal's terms, and back: the spec, the policies, the action."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleState,
)
from temporalio.client import ScheduleSpec as TemporalSpec
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from core.contracts import DEPLOYMENT_WORKFLOW, INITIATOR, RETIRE_WORKFLOW
from core.ids import schedule_id
from core.models.schedules import (
    SCHEDULED_START_WORKFLOW,
    OverlapPolicy,
    ScheduleDefinition,
    ScheduledStartInput,
    ScheduleSpec,
)
from core.schedule_calendar import parse_field

OVERLAP: dict[OverlapPolicy, ScheduleOverlapPolicy] = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminate_other": ScheduleOverlapPolicy.TERMINATE_OTHER,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}
OVERLAP_NAMES = {v: k for k, v in OVERLAP.items()}
# Types whose start has rules of its own in the API (a lock named by the target, a store row,
# policies): a schedule starts them through the `scheduled-start` wrapper, whose activity runs
# the API's start logic, because a scheduled workflow's id gets the time appended by Temporal
# and could never be the target's lock.
WRAPPED_TYPES = frozenset({DEPLOYMENT_WORKFLOW, RETIRE_WORKFLOW})
# The action's memo: what the caller wrote (the spec as given: Temporal turns cron strings into
# calendars, and the type and input of a wrapped start), kept where a PUT can replace it.
DEFINITION_MEMO = "r2c_schedule"
CREATED_BY_MEMO = "created_by"
TASK_QUEUE_MEMO = "task_queue"


def initiator(name: str) -> str:
    """The `Initiator` of every run a schedule starts."""
    return f"schedule:{name}"


def temporal_spec(spec: ScheduleSpec) -> TemporalSpec:
    return TemporalSpec(
        cron_expressions=list(spec.cron),
        intervals=[
            ScheduleIntervalSpec(
                every=timedelta(seconds=i.every),
                offset=timedelta(seconds=i.offset) if i.offset else None,
            )
            for i in spec.intervals
        ],
        calendars=[
            ScheduleCalendarSpec(
                second=parse_field("second", c.second),
                minute=parse_field("minute", c.minute),
                hour=parse_field("hour", c.hour),
                day_of_month=parse_field("day_of_month", c.day_of_month),
                month=parse_field("month", c.month),
                day_of_week=parse_field("day_of_week", c.day_of_week),
                comment=c.comment or None,
            )
            for c in spec.calendars
        ],
        time_zone_name=spec.time_zone,
        jitter=timedelta(seconds=spec.jitter) if spec.jitter else None,
        start_at=spec.start_at,
        end_at=spec.end_at,
    )


def build(
    name: str,
    definition: ScheduleDefinition,
    workflow_input: Any,
    *,
    created_by: str,
    role: str,
    task_queue: str,
) -> Schedule:
    """The Temporal schedule for `definition`; `workflow_input` is its validated input."""
    memo = {
        DEFINITION_MEMO: definition.model_dump(mode="json", include={"type", "input", "spec"}),
        CREATED_BY_MEMO: created_by,
        TASK_QUEUE_MEMO: task_queue,
    }
    summary = f"{definition.type} on schedule {name} (created by {created_by})"
    if definition.type in WRAPPED_TYPES:
        workflow = SCHEDULED_START_WORKFLOW
        arg: Any = ScheduledStartInput(
            schedule=name, type=definition.type, input=definition.input, role=role
        )
    else:
        workflow, arg = definition.type, workflow_input
    action = ScheduleActionStartWorkflow(
        workflow,
        arg,
        id=schedule_id(name),
        task_queue=task_queue,
        memo=memo,
        typed_search_attributes=TypedSearchAttributes(
            [SearchAttributePair(INITIATOR, initiator(name))]
        ),
        static_summary=summary,
    )
    catchup = definition.catchup_window
    return Schedule(
        action=action,
        spec=temporal_spec(definition.spec),
        policy=SchedulePolicy(
            overlap=OVERLAP[definition.overlap],
            catchup_window=timedelta(seconds=catchup) if catchup is not None else None,
            pause_on_failure=definition.pause_on_failure,
        ),
        state=ScheduleState(note=definition.note or None, paused=definition.paused),
    )
