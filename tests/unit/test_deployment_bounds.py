"""What keeps a deployment finite: pauses that do not eat the progress deadline, a background
analysis whose history stays small for hours, and errors that end in the saga rather than in
a workflow task retried forever. On the time-skipping server with fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from core.models.analysis import MeasureRequest, MetricValue, RouterCounters
from core.models.apikeys import Role
from core.models.deployments import ActionRequest, DeploymentState
from tests.unit.deployment_fakes import (
    FakeInfra,
    Run,
    deployment_input,
    settle,
    stable_v1,
    time_skipping,
)
from workflows.deployment import canary, rolling


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async for environment in time_skipping():
        yield environment


def healthy(infra: FakeInfra, req: MeasureRequest) -> MetricValue:
    base = req.since or RouterCounters()
    return MetricValue(
        value=0.0, requests=100, counters=RouterCounters(requests=base.requests + 100)
    )


async def test_a_fifteen_minute_pause_does_not_count_against_the_default_deadline(
    env: WorkflowEnvironment,
) -> None:
    run = Run(env.client, stable_v1(), env)
    strategy = {"type": "canary", "steps": [{"set_weight": 10}, {"pause": {"duration": "15m"}}]}
    inp = deployment_input(strategy)
    assert inp.strategy.progress_deadline_seconds == 600  # the default
    async with run.worker():
        status = await (await run.start(inp)).result()
    assert status.state is DeploymentState.SUCCEEDED, status.reason
    assert run.infra.serving() == {"green": "v2"}


async def test_the_blue_green_scale_down_delay_does_not_count_against_the_deadline(
    env: WorkflowEnvironment,
) -> None:
    run = Run(env.client, stable_v1(), env)
    strategy = {"type": "blue_green", "scale_down_delay_seconds": "20m"}
    async with run.worker():
        status = await (await run.start(deployment_input(strategy))).result()
    assert status.state is DeploymentState.SUCCEEDED, status.reason


async def test_the_deadline_still_fails_a_rollout_that_makes_no_progress(
    env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Run(env.client, stable_v1(), env)
    strategy = {
        "type": "canary",
        "steps": [{"set_weight": 10}, {"set_weight": 50}],
        "progress_deadline_seconds": 60,
    }
    original = canary._canary_steps

    async def stuck(wf, s, stable, new):  # a step that never ends, outside any pause
        from temporalio import workflow

        await wf.route({stable: 90, new: 10})
        await workflow.wait_condition(lambda: False)
        await original(wf, s, stable, new)

    monkeypatch.setattr(canary, "_canary_steps", stuck)
    async with run.worker():
        with pytest.raises(WorkflowFailureError):
            await (await run.start(deployment_input(strategy))).result()
    last = run.infra.records[-1].status
    assert last.state is DeploymentState.FAILED
    assert "progress deadline exceeded" in (last.reason or "")
    assert run.infra.serving() == {"blue": "v1"} and run.infra.versions() == {"blue": "v1"}


async def test_an_unexpected_error_in_workflow_code_rolls_back_and_fails(
    env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Run(env.client, stable_v1(), env)

    def broken(*_args: object) -> dict[str, int]:
        raise ZeroDivisionError("a share of nothing")

    monkeypatch.setattr(rolling, "_weights", broken)
    async with run.worker():
        handle = await run.start(deployment_input({"type": "rolling"}))
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert "internal error: ZeroDivisionError: a share of nothing" in str(failed.value.cause)
    # Compensated, not wedged: v1 serves everything, v2 is gone, and the store knows why.
    assert run.infra.serving() == {"blue": "v1"} and run.infra.versions() == {"blue": "v1"}
    last = run.infra.records[-1].status
    assert last.state is DeploymentState.FAILED and "ZeroDivisionError" in (last.reason or "")


async def test_a_six_hour_background_analysis_stays_far_under_the_history_limit(
    env: WorkflowEnvironment,
) -> None:
    run = Run(env.client, stable_v1(), env)
    run.infra.script = healthy
    strategy = {
        "type": "canary",
        "steps": [{"set_weight": 20}, {"pause": {"duration": "6h"}}, {"set_weight": 100}],
        "analysis": {
            "metrics": [
                {"name": "error_rate", "failure_condition": "result > 0.05", "interval": "30s"}
            ]  # fmt: skip
        },
    }
    async with run.worker():
        handle = await run.start(deployment_input(strategy))
        status = await handle.result()
    assert status.state is DeploymentState.SUCCEEDED, status.reason
    measured = [m for m in run.infra.measured if not m.baseline]
    assert len(measured) >= 6 * 120 - 2  # every 30 s for 6 hours
    parent = await _events(env, handle.id)
    runs = await _child_runs(env, f"{handle.id}:background:{status.deployment_id}")
    # The deployment's history holds the child's start and end, not its measurements; each
    # run of the child stays small; Temporal's limit is 51,200 events.
    print(
        f"6 h background analysis: {len(measured)} measurements; deployment history "
        f"{parent} events; {len(runs)} child runs, the largest {max(runs)} events"
    )
    assert parent < 200, parent
    assert len(runs) >= 3 and max(runs) < 5_000, runs
    assert len(status.measurements) <= 50  # the status keeps the newest


async def test_an_admin_passes_an_operator_approval_gate(env: WorkflowEnvironment) -> None:
    run = Run(env.client, stable_v1(), env)
    strategy = {"type": "canary", "steps": [{"set_weight": 10}, {"approval": {}}]}
    async with run.worker():
        handle = await run.start(deployment_input(strategy))
        await settle(run, handle, lambda s: s.state is DeploymentState.PAUSED, "approval")
        await handle.execute_update("approve", ActionRequest(by="apikey:boss", role=Role.ADMIN))
        status = await handle.result()
    assert status.state is DeploymentState.SUCCEEDED
    assert status.approvals[0].by == "apikey:boss"


async def test_safe_ui_actions_honour_abort_but_not_promote_from_the_temporal_ui(
    env: WorkflowEnvironment,
) -> None:
    run = Run(env.client, stable_v1(), env)
    strategy = {"type": "canary", "steps": [{"set_weight": 10}, {"pause": {}}]}
    async with run.worker():
        handle = await run.start(deployment_input(strategy, ui_actions="safe"))
        await settle(run, handle, lambda s: s.state is DeploymentState.PAUSED, "the pause")
        await handle.signal("promote")
        status = await settle(run, handle, lambda s: bool(s.notices), "a notice")
        assert "R2C_UI_ACTIONS=safe does not honour it" in status.notices[0]
        assert status.state is DeploymentState.PAUSED
        await handle.signal("abort")
        status = await handle.result()
    assert status.state is DeploymentState.ABORTED
    assert "temporal-ui" in (status.reason or "")
    assert run.infra.serving() == {"blue": "v1"}


async def _events(env: WorkflowEnvironment, workflow_id: str, run_id: str | None = None) -> int:
    history = await env.client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    return len(history.events)


async def _child_runs(env: WorkflowEnvironment, child_id: str) -> list[int]:
    """The history length of every run of the child, newest first, following each run's
    `continued_execution_run_id` back to the first."""
    sizes: list[int] = []
    run_id: str | None = None
    while True:
        history = await env.client.get_workflow_handle(child_id, run_id=run_id).fetch_history()
        sizes.append(len(history.events))
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
        if run_id is None:
            return sizes
