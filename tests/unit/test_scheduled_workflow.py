"""The `scheduled-start` wrapper on the time-skipping server, its activity replaced by name:
it hands the activity what to start, returns what it did, and retries a store that is away."""

from __future__ import annotations

import uuid

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core.models.schedules import (
    START_SCHEDULED_ACTIVITY,
    ScheduledStartInput,
    ScheduledStartResult,
)
from workflows.scheduled import ScheduledStartWorkflow

SEEN: list[tuple[str, int]] = []


@activity.defn(name=START_SCHEDULED_ACTIVITY)
async def fake_start(inp: ScheduledStartInput) -> ScheduledStartResult:
    attempt = activity.info().attempt
    SEEN.append((inp.schedule, attempt))
    if inp.input.get("busy"):
        return ScheduledStartResult(outcome="skipped", reason="demo is already being deployed")
    if attempt == 1:
        raise ApplicationError("the store is away", type="DependencyUnavailable")
    return ScheduledStartResult(outcome="started", workflow_id="deploy:demo:dev",
                                deployment_id=f"dep-{attempt}")  # fmt: skip


async def run(env: WorkflowEnvironment, **request: object) -> ScheduledStartResult:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    inp = ScheduledStartInput(schedule="nightly", type="deployment", input=request, role="operator")
    async with Worker(
        env.client, task_queue=queue, workflows=[ScheduledStartWorkflow], activities=[fake_start]
    ):
        result: ScheduledStartResult = await env.client.execute_workflow(
            ScheduledStartWorkflow.run, inp, id=f"r2c:schedule:nightly-{queue}", task_queue=queue
        )
        return result


async def test_a_start_is_retried_while_the_store_is_away(env: WorkflowEnvironment) -> None:
    SEEN.clear()
    result = await run(env, component="demo")
    assert result == ScheduledStartResult(
        outcome="started", workflow_id="deploy:demo:dev", deployment_id="dep-2"
    )
    assert SEEN == [("nightly", 1), ("nightly", 2)]
    assert result.describe() == "started dep-2"


async def test_a_skip_is_the_result_not_a_failure(env: WorkflowEnvironment) -> None:
    result = await run(env, busy=True)
    assert result.describe() == "skipped: demo is already being deployed"
