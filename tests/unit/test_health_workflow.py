"""The health-check workflow on the time-skipping server, with its activities replaced by name."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.slo import SloSampleResult
from core.models.health import (
    ComponentHealth,
    HealthCheckInput,
    HealthRecordRequest,
    HealthRecordResult,
    HealthReport,
    HealthState,
    HealthTarget,
    InstanceRef,
    TargetQuery,
)
from workflows.health_check import ComponentHealthCheckWorkflow

PROBES: list[str] = []


@activity.defn(name="list-health-targets")
async def fake_targets(query: TargetQuery) -> list[HealthTarget]:
    names = query.components or ["web", "api"]
    return [
        HealthTarget(
            component=name,
            path="/health",
            timeout_seconds=1,
            instances=[
                InstanceRef(instance_id=f"{name}-0", environment="dev", version="v1", url="x")
            ],
        )
        for name in names
    ]


@activity.defn(name="probe-component")
async def fake_probe(target: HealthTarget) -> ComponentHealth:
    PROBES.append(target.component)
    healthy = target.component != "api"
    return ComponentHealth(
        component=target.component,
        state=HealthState.HEALTHY if healthy else HealthState.UNHEALTHY,
        healthy_instances=int(healthy),
        total_instances=1,
        instances=[],
    )


@activity.defn(name="record-component-health")
async def fake_record(req: HealthRecordRequest) -> HealthRecordResult:
    return HealthRecordResult(recorded=len(req.round.components), changes=[])


SAMPLED: list[TargetQuery] = []


@activity.defn(name="sample-slo-counters")
async def fake_sample(query: TargetQuery) -> SloSampleResult:
    SAMPLED.append(query)
    return SloSampleResult()


@activity.defn(name="probe-component")
async def broken_probe(target: HealthTarget) -> ComponentHealth:
    raise RuntimeError(f"probe of {target.component} crashed")


async def _run(client: Client, req: HealthCheckInput, probe: object = fake_probe) -> HealthReport:
    queue = str(uuid.uuid4())
    async with Worker(
        client,
        task_queue=queue,
        workflows=[ComponentHealthCheckWorkflow],
        activities=[fake_targets, probe, fake_record, fake_sample],
    ):
        return await client.execute_workflow(
            ComponentHealthCheckWorkflow.run,
            req,
            id=str(uuid.uuid4()),
            task_queue=queue,
            execution_timeout=timedelta(days=2),
        )


async def test_one_round_probes_every_component(env: WorkflowEnvironment) -> None:
    PROBES.clear()
    report = await _run(env.client, HealthCheckInput())
    assert sorted(PROBES) == ["api", "web"]
    assert report.rounds_completed == 1 and report.unhealthy_rounds == 1
    assert report.last is not None
    assert {c.component: c.state for c in report.last.components} == {
        "web": HealthState.HEALTHY,
        "api": HealthState.UNHEALTHY,
    }


async def test_watch_sleeps_between_rounds_in_skipped_time(env: WorkflowEnvironment) -> None:
    start = await env.get_current_time()
    report = await _run(
        env.client, HealthCheckInput(components=["web"], rounds=5, interval_seconds=3600)
    )
    assert report.rounds_completed == 5 and report.unhealthy_rounds == 0
    assert await env.get_current_time() - start >= timedelta(hours=4)


async def test_a_probe_that_keeps_crashing_fails_the_check(env: WorkflowEnvironment) -> None:
    with pytest.raises(WorkflowFailureError) as caught:
        await _run(env.client, HealthCheckInput(components=["web"]), probe=broken_probe)
    assert "probe of web crashed" in str(caught.value.cause.cause)
