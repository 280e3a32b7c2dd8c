"""The gates an environment policy puts in a deployment's plan, run by the real workflow on the
time-skipping server with the activities faked by name: several different approvers, the
blue-green and rolling gates, and a first deployment that waits for the policy's approval."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from core.models.apikeys import Role
from core.models.deployments import (
    ActionRequest,
    DeploymentState,
    DeploymentStatus,
    PauseReason,
)
from core.models.policies import PolicySpec, RequiredApproval
from core.policies import with_required_gates
from tests.unit.deployment_fakes import (
    FakeInfra,
    Run,
    deployment_input,
    settle,
    stable_v1,
    time_skipping,
)
from workflows.deployment.workflow import DeploymentWorkflow

TWO = PolicySpec(required_approval=RequiredApproval(roles=[Role.OPERATOR], approvers=2))
CANARY = {"type": "canary", "steps": [{"set_weight": 20}, {"set_weight": 100}]}


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async for environment in time_skipping():
        yield environment


def planned(strategy: dict[str, Any], policy: PolicySpec = TWO) -> dict[str, Any]:
    """The strategy as the API plans it under `policy`."""
    inp = deployment_input(strategy)
    return with_required_gates(policy, "prod v1", inp).strategy.model_dump(mode="json")


def waiting_for_approval(status: DeploymentStatus) -> bool:
    return status.pause_reason is PauseReason.APPROVAL


async def approve(
    handle: WorkflowHandle[Any, DeploymentStatus], by: str, role: Role = Role.OPERATOR
) -> DeploymentStatus:
    return await handle.execute_update(
        DeploymentWorkflow.approve, ActionRequest(by=by, role=role, reason="ok")
    )


async def test_two_different_approvers_are_needed_and_one_twice_is_refused(
    env: WorkflowEnvironment,
) -> None:
    run = Run(env.client, stable_v1(), env)
    async with run.worker():
        handle = await run.start(deployment_input(planned(CANARY)))
        status = await settle(run, handle, waiting_for_approval, "the approval gate")
        assert status.step == 2 and "2 different people" in status.phase
        assert run.infra.serving() == {"blue": "v1", "green": "v2"}  # 20% on the canary
        await approve(handle, "apikey:alice")
        with pytest.raises(WorkflowUpdateFailedError):
            await approve(handle, "apikey:alice")
        # A signal names its sender itself: it is not one of the different people.
        await handle.signal(DeploymentWorkflow.approve_signal, ActionRequest(by="bob"))
        status = await run.status(handle)
        assert status.state is DeploymentState.PAUSED and len(status.approvals) == 1
        assert "different approvers" in status.notices[-1]
        await approve(handle, "apikey:carol", Role.ADMIN)
        done = await handle.result()
    assert done.state is DeploymentState.SUCCEEDED
    assert [a.by for a in done.approvals] == ["apikey:alice", "apikey:carol"]
    assert run.infra.serving() == {"green": "v2"}


@pytest.mark.parametrize("kind", ["blue_green", "rolling"])
async def test_blue_green_and_rolling_wait_for_the_policy_gate_before_any_traffic_moves(
    env: WorkflowEnvironment, kind: str
) -> None:
    strategy = planned({"type": kind}, PolicySpec(required_approval=RequiredApproval()))
    run = Run(env.client, stable_v1(), env)
    async with run.worker():
        handle = await run.start(deployment_input(strategy))
        await settle(run, handle, waiting_for_approval, "the approval gate")
        assert run.infra.serving() == {"blue": "v1"}
        await approve(handle, "apikey:alice")
        done = await handle.result()
    assert done.state is DeploymentState.SUCCEEDED
    assert set(run.infra.serving().values()) == {"v2"}


async def test_a_first_deployment_waits_for_the_policy_approval(env: WorkflowEnvironment) -> None:
    strategy = planned(CANARY, PolicySpec(required_approval=RequiredApproval()))
    run = Run(env.client, FakeInfra(), env)  # nothing serves yet
    async with run.worker():
        handle = await run.start(deployment_input(strategy))
        await settle(run, handle, waiting_for_approval, "the approval gate")
        assert run.infra.sets == {}
        await approve(handle, "apikey:alice")
        done = await handle.result()
    assert done.state is DeploymentState.SUCCEEDED
    assert run.infra.serving() == {"blue": "v2"}


async def test_a_first_deployment_still_skips_an_approval_no_policy_asked_for(
    env: WorkflowEnvironment,
) -> None:
    own_gate = {"type": "canary", "steps": [{"set_weight": 20}, {"approval": {}}]}
    run = Run(env.client, FakeInfra(), env)
    async with run.worker():
        done = await (await run.start(deployment_input(own_gate))).result()
    assert done.state is DeploymentState.SUCCEEDED and done.approvals == []
