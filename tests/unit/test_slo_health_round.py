"""The health check reads the routers' counters for the SLOs after each round, and a reading
that fails leaves the round standing (time-skipping server, activities faked by name)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import is_cancelled_exception
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.slo import SloSampleResult
from core.models.health import HealthCheckInput, HealthReport, TargetQuery
from tests.support import wait_for
from tests.unit.test_health_workflow import fake_probe, fake_record, fake_targets
from workflows.health_check import ComponentHealthCheckWorkflow

SAMPLED: list[TargetQuery] = []


@activity.defn(name="sample-slo-counters")
async def sample(query: TargetQuery) -> SloSampleResult:
    SAMPLED.append(query)
    return SloSampleResult(targets=1, kept=1)


@activity.defn(name="sample-slo-counters")
async def broken_sample(query: TargetQuery) -> SloSampleResult:
    raise RuntimeError(f"the store is away ({query.components})")


async def _run(client: Client, req: HealthCheckInput, sampler: object) -> HealthReport:
    queue = str(uuid.uuid4())
    async with Worker(
        client,
        task_queue=queue,
        workflows=[ComponentHealthCheckWorkflow],
        activities=[fake_targets, fake_probe, fake_record, sampler],
    ):
        return await client.execute_workflow(
            ComponentHealthCheckWorkflow.run,
            req,
            id=str(uuid.uuid4()),
            task_queue=queue,
            execution_timeout=timedelta(days=1),
        )


async def test_every_round_reads_the_counters_of_the_same_targets(
    env: WorkflowEnvironment,
) -> None:
    SAMPLED.clear()
    req = HealthCheckInput(components=["web"], environment="prod", rounds=3, interval_seconds=60)
    report = await _run(env.client, req, sample)
    assert report.rounds_completed == 3
    assert SAMPLED == [TargetQuery(components=["web"], environment="prod")] * 3


async def test_a_failed_reading_leaves_the_health_round_standing(
    env: WorkflowEnvironment,
) -> None:
    report = await _run(env.client, HealthCheckInput(components=["web"]), broken_sample)
    assert report.rounds_completed == 1
    assert report.last is not None and [c.component for c in report.last.components] == ["web"]


READING_STARTED: list[str] = []


@activity.defn(name="sample-slo-counters")
async def slow_sample(query: TargetQuery) -> SloSampleResult:
    READING_STARTED.append(activity.info().workflow_id)
    while True:  # until the workflow's cancellation reaches it
        activity.heartbeat()
        await asyncio.sleep(0.1)


async def test_cancelling_the_check_during_a_reading_ends_it_cancelled(
    env: WorkflowEnvironment,
) -> None:
    # The failed-reading handler must not swallow the cancellation: before, the check went on
    # to its next round and a cancelled health check kept running.
    READING_STARTED.clear()
    queue, workflow_id = str(uuid.uuid4()), str(uuid.uuid4())
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[ComponentHealthCheckWorkflow],
        activities=[fake_targets, fake_probe, fake_record, slow_sample],
    ):
        handle = await env.client.start_workflow(
            ComponentHealthCheckWorkflow.run,
            HealthCheckInput(components=["web"], rounds=5, interval_seconds=60),
            id=workflow_id,
            task_queue=queue,
            execution_timeout=timedelta(days=1),
        )

        async def started() -> list[str]:
            return list(READING_STARTED)

        await wait_for(started, what="the reading to start", within=30)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), 30)
        assert is_cancelled_exception(failure.value.cause)
        assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
        assert READING_STARTED == [workflow_id]
