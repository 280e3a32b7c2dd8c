"""Signals sent from the Temporal UI are in the audit trail: each one, honoured or ignored (with
why), is one `record-audit-event` call; a trail that cannot be written never fails the
deployment. On the time-skipping server with the activities faked by name."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.audit import AuditEventRequest
from core.models.deployments import ActionRequest, DeploymentState, DeploymentStatus
from tests.unit.deployment_fakes import Run, deployment_input, settle, stable_v1, time_skipping
from workflows.deployment.workflow import DeploymentWorkflow


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async for environment in time_skipping():
        yield environment


def _paused(status: DeploymentStatus) -> bool:
    return status.state is DeploymentState.PAUSED


async def test_each_signal_honoured_or_ignored_is_recorded_once(env: WorkflowEnvironment) -> None:
    run = Run(env.client, stable_v1(), env)
    strategy = {"type": "canary", "steps": [{"set_weight": 10}, {"approval": {}}, {"pause": {}}]}
    inp = deployment_input(strategy, ui_actions="all")
    async with run.worker():
        handle = await run.start(inp)
        await settle(run, handle, _paused, "the approval gate")
        await handle.signal("promote")  # ignored: the step waits for an approval
        await handle.signal("approve", ActionRequest(by="alice", reason="looks good"))
        await settle(run, handle, lambda s: s.paused_reason is not None and s.step == 3, "pause")
        await handle.signal("pause", ActionRequest(by="bob"))
        await handle.signal("resume", ActionRequest(by="bob"))
        await handle.signal("promote", ActionRequest(by="bob"))
        status = await handle.result()
        workflow_run = handle.result_run_id or ""
        history = await handle.fetch_history()
    assert status.state is DeploymentState.SUCCEEDED, status.reason
    assert status.approvals[0].by == "temporal-ui (alice)"
    # The records run side by side: in the order of their keys, the order the signals came.
    audits = sorted(run.infra.audits, key=lambda a: int(a.key.rsplit(":", 1)[1]))
    seen = [(a.action, a.actor, a.detail["honoured"]) for a in audits]
    assert seen == [
        ("deployment.promote", "temporal-ui (unnamed)", False),
        ("deployment.approve", "temporal-ui (alice)", True),
        ("deployment.pause", "temporal-ui (bob)", True),
        ("deployment.resume", "temporal-ui (bob)", True),
        ("deployment.promote", "temporal-ui (bob)", True),
    ]
    ignored, approved = audits[0], audits[1]
    assert ignored.detail["reason"] == (
        "this step waits for an approval, not a promotion: use approve"
    )
    assert approved.detail == {
        "via": "temporal-ui-signal",
        "honoured": True,
        "reason": None,
        "comment": "looks good",
    }
    assert {a.target for a in audits} == {inp.deployment_id}
    # One key per signal, deterministic (run id and a counter): what makes retries idempotent.
    assert [a.key for a in audits] == [f"ui-signal:{workflow_run}:{n}" for n in range(1, 6)]
    assert run.infra.calls.count("record-audit-event") == 5
    # Signal handlers that run activities replay as they ran (the patch marker included).
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
    ]
    assert scheduled.count("record-audit-event") == 5
    replayer = Replayer(workflows=[DeploymentWorkflow], data_converter=pydantic_data_converter)
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure


async def test_a_trail_that_cannot_be_written_does_not_fail_the_deployment(
    env: WorkflowEnvironment,
) -> None:
    run = Run(env.client, stable_v1(), env)
    run.infra.fail["record-audit-event"] = lambda _: "the store is away"
    strategy = {"type": "canary", "steps": [{"set_weight": 10}, {"pause": {}}]}
    async with run.worker():
        handle = await run.start(deployment_input(strategy, ui_actions="safe"))
        await settle(run, handle, _paused, "the pause")
        await handle.signal("promote")  # ignored: R2C_UI_ACTIONS=safe
        await handle.signal("abort", ActionRequest(by="carol", reason="wrong build"))
        status = await handle.result()
    assert status.state is DeploymentState.ABORTED  # the gate acted at once, unrecorded
    assert run.infra.serving() == {"blue": "v1"}
    assert run.infra.calls.count("record-audit-event") == 2
    unrecorded = [n for n in status.notices if "is not in the audit trail" in n]
    assert len(unrecorded) == 2 and "the store is away" in unrecorded[-1], status.notices


async def test_a_store_that_stays_away_is_given_up_after_the_bound(
    env: WorkflowEnvironment,
) -> None:
    attempts: list[int] = []

    @activity.defn(name="record-audit-event")
    async def store_away(_: AuditEventRequest) -> bool:
        attempts.append(activity.info().attempt)
        raise RuntimeError("connection refused")  # retryable, as an OperationalError is

    run = Run(env.client, stable_v1(), env)
    others = [a for a in run.infra.activities() if a.__name__ != "record_audit"]
    strategy = {"type": "canary", "steps": [{"set_weight": 10}, {"pause": {}}]}
    worker = Worker(
        env.client,
        task_queue=run.queue,
        workflows=[DeploymentWorkflow],
        activities=[*others, store_away],
    )
    async with worker:
        handle = await run.start(deployment_input(strategy, ui_actions="all"))
        await settle(run, handle, _paused, "the pause")
        await handle.signal("promote", ActionRequest(by="erin"))
        status = await handle.result()
    assert status.state is DeploymentState.SUCCEEDED  # promoted at once, unrecorded
    assert 1 < len(attempts) <= 10  # retried, within the bound
    assert any(
        "promote from temporal-ui (erin) is not in the audit trail" in n for n in status.notices
    ), status.notices
