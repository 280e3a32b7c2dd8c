"""`scheduled-start`: what a schedule starts for a type whose start the API's rules govern
(deployments, retires): one activity runs that start, so a busy target or a refusing policy
becomes a recorded skip rather than a failed run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.models.schedules import (
        SCHEDULED_START_WORKFLOW,
        START_SCHEDULED_ACTIVITY,
        ScheduledStartInput,
        ScheduledStartResult,
    )
    from workflows.retry import MUTATING


@workflow.defn(name=SCHEDULED_START_WORKFLOW)
class ScheduledStartWorkflow:
    """Starts the scheduled deployment or retire; its result says what happened."""

    @workflow.run
    async def run(self, inp: ScheduledStartInput) -> ScheduledStartResult:
        # By name: the activity runs the API's start logic, which the workflow need not import.
        result: ScheduledStartResult = await workflow.execute_activity(
            START_SCHEDULED_ACTIVITY,
            inp,
            result_type=ScheduledStartResult,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=MUTATING,
            summary=f"start {inp.type} for schedule {inp.schedule}",
        )
        workflow.set_current_details(result.describe())
        return result


SCHEDULE_WORKFLOWS: Sequence[type] = (ScheduledStartWorkflow,)
