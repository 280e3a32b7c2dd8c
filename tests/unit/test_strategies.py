"""Each strategy through each way a deployment can go, on the time-skipping server with the
activities faked by name: what a user sees at the end (which version serves, which sets
exist, what the store recorded and why), not only the calls made."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from core.models.analysis import MeasureRequest, MetricValue, RouterCounters
from core.models.deployments import ActionRequest, DeploymentState, DeploymentStatus, PauseReason
from tests.unit.deployment_fakes import (
    FakeInfra,
    Run,
    deployment_input,
    settle,
    stable_v1,
    time_skipping,
)

ERROR_RATE = {"name": "error_rate", "failure_condition": "result > 0.05", "interval": "2s",
              "count": 2}  # fmt: skip
ANALYSIS = {"metrics": [ERROR_RATE]}

# Each strategy with an analysis where it has one, and a gate a human can act on.
CANARY = {"type": "canary", "steps": [{"set_weight": 20}, {"analysis": ANALYSIS},
                                      {"pause": {}}, {"set_weight": 100}]}  # fmt: skip
CANARY_NO_GATE = {"type": "canary", "steps": [{"set_weight": 20}, {"analysis": ANALYSIS},
                                              {"set_weight": 100}]}  # fmt: skip
BLUE_GREEN = {"type": "blue_green", "pre_promotion_analysis": ANALYSIS,
              "auto_promotion_enabled": False, "scale_down_delay_seconds": 0}  # fmt: skip
BLUE_GREEN_AUTO = {"type": "blue_green", "pre_promotion_analysis": ANALYSIS,
                   "scale_down_delay_seconds": 0}  # fmt: skip
ROLLING = {"type": "rolling", "pause_between_batches": "1h"}
ROLLING_FAST = {"type": "rolling"}
WITH_ANALYSIS = {"canary": CANARY_NO_GATE, "blue_green": BLUE_GREEN_AUTO}
WITH_GATE = {"canary": CANARY, "blue_green": BLUE_GREEN, "rolling": ROLLING}
PLAIN = {"canary": CANARY_NO_GATE, "blue_green": BLUE_GREEN_AUTO, "rolling": ROLLING_FAST}
GATE_REASON = {"canary": PauseReason.STEP, "blue_green": PauseReason.PROMOTION, "rolling": None}


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async for environment in time_skipping():
        yield environment


def error_rate(value: float, requests: int = 50):
    def script(infra: FakeInfra, req: MeasureRequest) -> MetricValue:
        base = req.since or RouterCounters()
        counters = RouterCounters(requests=base.requests + requests)
        return MetricValue(value=value, requests=requests, counters=counters)

    return script


def late_then(value: float):
    """No requests at first, then enough, with `value` as their error rate."""

    def script(infra: FakeInfra, req: MeasureRequest) -> MetricValue:
        n = sum(1 for m in infra.measured if not m.baseline)
        return error_rate(value, 0 if n <= 2 else 50)(infra, req)

    return script


async def outcome(handle: WorkflowHandle[Any, DeploymentStatus], run: Run) -> DeploymentStatus:
    """The recorded end of the deployment, however the workflow itself ended."""
    try:
        await handle.result()
    except WorkflowFailureError:
        pass
    return run.infra.records[-1].status


def back_on_v1(infra: FakeInfra) -> None:
    assert infra.serving() == {"blue": "v1"}, infra.weights
    assert infra.versions() == {"blue": "v1"}, infra.sets
    assert infra.sets["blue"].count == 2


def on_v2(infra: FakeInfra) -> None:
    assert infra.serving() == {"green": "v2"}, infra.weights
    assert infra.versions() == {"green": "v2"}, infra.sets


async def deploy(env: WorkflowEnvironment, strategy: dict[str, Any], **kw: Any) -> Run:
    run = Run(env.client, stable_v1(env=kw.pop("stable_env", None)), env)
    run.infra.script = kw.pop("script", error_rate(0.0))
    return run


# ----------------------------------------------------------------------------- success


@pytest.mark.parametrize("kind", ["canary", "blue_green", "rolling"])
async def test_success_moves_everything_to_the_new_version(
    env: WorkflowEnvironment, kind: str
) -> None:
    run = await deploy(env, PLAIN[kind])
    async with run.worker():
        status = await (await run.start(deployment_input(PLAIN[kind]))).result()
    assert status.state is DeploymentState.SUCCEEDED, status.reason
    on_v2(run.infra)
    assert run.infra.records[-1].status.state is DeploymentState.SUCCEEDED


@pytest.mark.parametrize("kind", ["canary", "blue_green"])
@pytest.mark.parametrize("script", ["failing", "late-then-failing"])
async def test_a_failed_analysis_rolls_back(
    env: WorkflowEnvironment, kind: str, script: str
) -> None:
    run = await deploy(env, WITH_ANALYSIS[kind])
    run.infra.script = error_rate(0.5) if script == "failing" else late_then(0.5)
    async with run.worker():
        status = await (await run.start(deployment_input(WITH_ANALYSIS[kind]))).result()
    assert status.state is DeploymentState.ROLLED_BACK
    assert "failure condition `result > 0.05` holds" in (status.reason or "")
    back_on_v1(run.infra)
    if script == "late-then-failing":
        assert [m.phase for m in status.measurements][:2] == ["no_data", "no_data"]


async def test_a_failed_post_promotion_analysis_switches_back(env: WorkflowEnvironment) -> None:
    strategy = {"type": "blue_green", "post_promotion_analysis": ANALYSIS}
    run = await deploy(env, strategy, script=error_rate(0.5))
    async with run.worker():
        status = await (await run.start(deployment_input(strategy))).result()
    assert status.state is DeploymentState.ROLLED_BACK
    assert {"blue": 0, "green": 100} in run.infra.weight_history  # it did switch, then back
    back_on_v1(run.infra)


# ----------------------------------------------------------------------------- humans


async def _at_gate(run: Run, handle: WorkflowHandle[Any, DeploymentStatus], kind: str) -> None:
    if kind == "rolling":  # the pause between batches: a timed pause, not a paused state
        await settle(run, handle, lambda s: s.phase == "pause 3600s", "the pause")
    else:
        status = await settle(run, handle, lambda s: s.state is DeploymentState.PAUSED, "gate")
        assert status.pause_reason is GATE_REASON[kind]


@pytest.mark.parametrize("kind", ["canary", "blue_green", "rolling"])
async def test_abort_at_a_gate_restores_the_old_version(
    env: WorkflowEnvironment, kind: str
) -> None:
    run = await deploy(env, WITH_GATE[kind])
    async with run.worker():
        handle = await run.start(deployment_input(WITH_GATE[kind]))
        await _at_gate(run, handle, kind)
        await handle.execute_update("abort", ActionRequest(by="apikey:ops", reason="bad idea"))
        status = await outcome(handle, run)
    assert status.state is DeploymentState.ABORTED
    assert status.reason == "aborted by apikey:ops: bad idea"
    back_on_v1(run.infra)


@pytest.mark.parametrize("kind", ["canary", "blue_green", "rolling"])
async def test_cancel_before_the_switch_restores_the_old_version(
    env: WorkflowEnvironment, kind: str
) -> None:
    run = await deploy(env, WITH_GATE[kind])
    async with run.worker():
        handle = await run.start(deployment_input(WITH_GATE[kind]))
        await _at_gate(run, handle, kind)
        await handle.cancel()
        status = await outcome(handle, run)
    assert status.state is DeploymentState.ABORTED
    assert "(cancellation)" in (status.reason or "")
    back_on_v1(run.infra)


@pytest.mark.parametrize("kind", ["canary", "blue_green", "rolling"])
async def test_cancel_after_the_switch_finishes_and_succeeds(
    env: WorkflowEnvironment, kind: str
) -> None:
    run = await deploy(env, PLAIN[kind])
    release = asyncio.Event()
    run.infra.hold["remove-instance-set"] = release  # the old set's removal, after the switch
    async with run.worker():
        handle = await run.start(deployment_input(PLAIN[kind]))
        await settle(run, handle, lambda s: s.phase == "removing the previous version", "clean-up")
        await handle.cancel()
        release.set()
        status = await outcome(handle, run)
    assert status.state is DeploymentState.SUCCEEDED
    assert "a cancellation arrived after the switch" in (status.reason or "")
    on_v2(run.infra)


@pytest.mark.parametrize("kind", ["canary", "blue_green", "rolling"])
async def test_promote_full_skips_every_remaining_step(env: WorkflowEnvironment, kind: str) -> None:
    run = await deploy(env, WITH_GATE[kind])
    async with run.worker():
        handle = await run.start(deployment_input(WITH_GATE[kind]))
        await _at_gate(run, handle, kind)
        await handle.execute_update("promote", ActionRequest(by="t", full=True))
        status = await handle.result()
    assert status.state is DeploymentState.SUCCEEDED
    on_v2(run.infra)


@pytest.mark.parametrize(("policy", "state"), [("abort", "aborted"), ("continue", "succeeded")])
async def test_an_approval_that_never_comes_follows_its_policy(
    env: WorkflowEnvironment, policy: str, state: str
) -> None:
    strategy = {"type": "canary", "steps": [{"set_weight": 10},
                {"approval": {"timeout": "1h", "on_timeout": policy}}]}  # fmt: skip
    run = await deploy(env, strategy)
    async with run.worker():
        status = await outcome(await run.start(deployment_input(strategy)), run)
    assert status.state.value == state
    if policy == "abort":
        assert status.reason == "no approval within 3600s at step 2"
        back_on_v1(run.infra)
    else:
        on_v2(run.infra)


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize("kind", ["canary", "blue_green", "rolling"])
async def test_a_step_that_fails_for_good_rolls_back_and_fails(
    env: WorkflowEnvironment, kind: str
) -> None:
    run = await deploy(env, PLAIN[kind])
    run.infra.fail["ensure-instances"] = lambda spec: (
        "cannot run v2: no such program" if spec.version == "v2" else None
    )
    async with run.worker():
        status = await outcome(await run.start(deployment_input(PLAIN[kind])), run)
    assert status.state is DeploymentState.FAILED
    assert "cannot run v2: no such program" in (status.reason or "")
    back_on_v1(run.infra)


@pytest.mark.parametrize("kind", ["canary", "blue_green", "rolling"])
async def test_a_compensation_that_fails_is_named_in_the_reason(
    env: WorkflowEnvironment, kind: str
) -> None:
    strategy = WITH_GATE[kind]
    run = await deploy(env, strategy)
    run.infra.fail["remove-instance-set"] = lambda req: f"cannot remove {req.slot}"
    async with run.worker():
        handle = await run.start(deployment_input(strategy))
        await _at_gate(run, handle, kind)
        await handle.execute_update("abort", ActionRequest(by="t"))
        status = await outcome(handle, run)
    assert status.state is DeploymentState.FAILED
    assert "compensation failed: new set" in (status.reason or "")
    # The traffic went back all the same; only the new set is left behind, and said so.
    assert run.infra.serving() == {"blue": "v1"}


@pytest.mark.parametrize("kind", ["canary", "blue_green", "rolling"])
async def test_a_step_that_hangs_hits_the_progress_deadline(
    env: WorkflowEnvironment, kind: str
) -> None:
    # Time does not skip while an activity runs: a short deadline keeps the test short.
    strategy = {**PLAIN[kind], "progress_deadline_seconds": 2}
    run = await deploy(env, strategy)
    stuck = asyncio.Event()
    calls = 0

    def first_weights_only(req: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first weight change hangs; the undo's must not
            run.infra.hold.pop("set-weights", None)
        return None

    run.infra.hold["set-weights"] = stuck
    run.infra.fail["set-weights"] = first_weights_only
    async with run.worker():
        handle = await run.start(deployment_input(strategy))
        await settle(run, handle, lambda s: "set-weights" in run.infra.calls, "the stuck step")
        status = await outcome(handle, run)
    assert status.state is DeploymentState.FAILED
    assert "no progress for 2s (progress deadline exceeded)" in (status.reason or "")
    back_on_v1(run.infra)
