"""How an analysis judges a canary: no data is not a verdict, the window starts with the
analysis, and a promotion passes only the gate that is open. On the time-skipping server
with the activities faked by name."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from core.models.analysis import MeasureRequest, MetricValue, RouterCounters
from core.models.deployments import ActionRequest, DeploymentState
from tests.canaries import BAD_CANARY
from tests.unit.deployment_fakes import (
    FakeInfra,
    Run,
    deployment_input,
    settle,
    stable_v1,
    time_skipping,
)


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async for environment in time_skipping():
        yield environment


def traffic_arrives_late(infra: FakeInfra, req: MeasureRequest) -> MetricValue:
    """No request yet, then too few to judge, then enough: half of them failing."""
    n = sum(1 for m in infra.measured if not m.baseline)
    requests = {1: 0, 2: 4}.get(n, 40 * n)
    value = None if requests == 0 else 0.5
    base = req.since or RouterCounters()
    counters = RouterCounters(requests=base.requests + requests, errors=base.errors + requests // 2)
    return MetricValue(value=value, requests=requests, counters=counters)


async def test_a_bad_canary_measured_before_its_traffic_rolls_back_by_itself(
    env: WorkflowEnvironment,
) -> None:
    run = Run(env.client, stable_v1(), env)
    run.infra.script = traffic_arrives_late
    async with run.worker():
        handle = await run.start(deployment_input(BAD_CANARY))
        status = await handle.result()
    assert status.state is DeploymentState.ROLLED_BACK
    assert "error_rate 0.5" in (status.reason or "")
    # It never waited for a human, and v1 serves everything again with v2 gone.
    assert DeploymentState.PAUSED not in {r.status.state for r in run.infra.records}
    assert run.infra.serving() == {"blue": "v1"} and run.infra.versions() == {"blue": "v1"}
    phases = [m.phase for m in status.measurements]
    assert phases == ["no_data", "no_data", "failed"]
    assert "0 requests reached the new version" in status.measurements[0].message
    assert "4 requests reached the new version, fewer than 10" in status.measurements[1].message


async def test_the_window_starts_at_the_analysis_not_at_the_routers_start(
    env: WorkflowEnvironment,
) -> None:
    run = Run(env.client, stable_v1(), env)
    run.infra.script = traffic_arrives_late
    async with run.worker():
        await (await run.start(deployment_input(BAD_CANARY))).result()
    first, *rest = run.infra.measured
    # The baseline read comes first; every measurement then counts from it, not from zero
    # (the fake router has already counted 900 errors of an earlier v2).
    assert first.baseline and first.since is None
    assert rest and all(m.since is not None and m.since.requests >= 1000 for m in rest)


async def test_data_that_never_comes_is_inconclusive_after_the_bound(
    env: WorkflowEnvironment,
) -> None:
    run = Run(env.client, stable_v1(), env)
    run.infra.script = lambda infra, req: MetricValue(value=None, requests=0)
    async with run.worker():
        handle = await run.start(deployment_input(BAD_CANARY))
        status = await _wait_for_state(run, handle, DeploymentState.PAUSED)
        assert status.paused_reason is not None and "no data after waiting" in status.paused_reason
        waits = [m for m in status.measurements if m.phase == "no_data"]
        # 3 measurements 2 s apart: the bound is 30 s, at 2 s a retry.
        assert 14 <= len(waits) <= 16
        await handle.execute_update("abort", ActionRequest(by="t"))
        assert (await handle.result()).state is DeploymentState.ABORTED


async def test_a_promotion_sent_while_nothing_waits_is_refused_and_passes_no_later_gate(
    env: WorkflowEnvironment,
) -> None:
    run = Run(env.client, stable_v1(), env)
    strategy = {
        "type": "canary",
        "steps": [{"set_weight": 20}, {"pause": {"duration": "10m"}}, {"pause": {}}],
    }
    async with run.worker():
        handle = await run.start(deployment_input(strategy))
        await _wait_for_phase(run, handle, "pause 600s")
        # Open gate: the timed pause. The promotion passes it, and only it.
        await handle.execute_update("promote", ActionRequest(by="t"))
        status = await _wait_for_state(run, handle, DeploymentState.PAUSED)
        assert status.paused_reason == "step 3: paused until promoted"
        await handle.execute_update("promote", ActionRequest(by="t"))
        assert (await handle.result()).state is DeploymentState.SUCCEEDED


async def test_a_stray_promotion_during_an_analysis_is_refused(env: WorkflowEnvironment) -> None:
    run = Run(env.client, stable_v1(), env)
    run.infra.script = lambda infra, req: MetricValue(value=None, requests=0)
    strategy = {**BAD_CANARY, "steps": [*BAD_CANARY["steps"], {"pause": {}}]}
    async with run.worker():
        handle = await run.start(deployment_input(strategy))
        await _wait_for_phase(run, handle, "analysis at step 2")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("promote", ActionRequest(by="t"))
        assert "nothing waits for a promotion now" in str(refused.value.cause)
        # A signal from the Temporal UI is dropped the same way, and the status says so.
        await handle.signal("promote")
        status = await settle(run, handle, lambda s: bool(s.notices), "a notice")
        assert "signal promote from temporal-ui (unnamed) ignored" in status.notices[0]
        await handle.execute_update("abort", ActionRequest(by="t"))
        assert (await handle.result()).state is DeploymentState.ABORTED


async def _wait_for_state(run: Run, handle, state: DeploymentState):
    return await settle(run, handle, lambda s: s.state is state, f"state {state}")


async def _wait_for_phase(run: Run, handle, phase: str):
    return await settle(run, handle, lambda s: s.phase == phase, phase)
