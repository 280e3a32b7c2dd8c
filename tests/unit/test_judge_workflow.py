"""A judge metric inside a deployment's analysis: its verdict continues, pauses or rolls back
the rollout (per `on_verdict`), a judgement without data is measured again, and the status
shows each judgement. On the time-skipping server, with the judging activity (`judge-window`)
replaced by name by a script of verdicts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core.judge.config import JudgeMetric
from core.judge.result import JudgeResult, MetricVerdict, Verdict, judgement
from core.models.analysis import JudgeWindowRequest, MetricValue
from core.models.deployments import ActionRequest, DeploymentState, DeploymentStatus
from tests.unit.deployment_fakes import (
    Run,
    deployment_input,
    settle,
    stable_v1,
    time_skipping,
)
from workflows.deployment.background import BackgroundAnalysisWorkflow
from workflows.deployment.workflow import DeploymentWorkflow

LATENCY = JudgeMetric(name="latency", kind="latency")
SCORES: dict[Verdict, float] = {"pass": 100.0, "warning": 80.0, "fail": 0.0}


def result(verdict: Verdict, metric: MetricVerdict | None = None) -> JudgeResult:
    """A judgement of one latency metric, worded as the judge words it."""
    metric = metric or ("pass" if verdict == "pass" else "fail")
    reason = {
        "pass": "latency: 20.1 ms vs 20.0 ms, the same as the baseline",
        "fail": "latency: 41 ms vs 20 ms, 100% above the baseline (p<0.0001)",
        "nodata": "latency: no data, 0 vs 500 requests (canary vs baseline)",
    }[metric]
    score = 0.0 if metric == "nodata" else SCORES[verdict]
    return JudgeResult(
        score=score,
        verdict=verdict,
        metrics=[judgement(LATENCY, metric, (500, 100), reason, test="Mann-Whitney U")],
        reason=f"{verdict} at score {score:g}",
    )


def judge_analysis(**judge: Any) -> dict[str, Any]:
    return {
        "metrics": [
            {
                "name": "judge",
                "interval": "10s",
                "count": 2,
                "judge": {"metrics": [{"name": "latency", "kind": "latency"}], **judge},
            }
        ]
    }


def canary(**judge: Any) -> dict[str, Any]:
    return {
        "type": "canary",
        "steps": [{"set_weight": 20}, {"analysis": judge_analysis(**judge)}, {"set_weight": 100}],
    }


Script = Callable[[list[JudgeWindowRequest]], JudgeResult]


class JudgedRun(Run):
    """A deployment run whose worker also has a scripted `judge-window` activity."""

    def __init__(self, env: WorkflowEnvironment, script: Script, replicas: int = 2) -> None:
        super().__init__(env.client, stable_v1(replicas), env)
        self.asked: list[JudgeWindowRequest] = []
        self.script = script

    def worker(self) -> Worker:
        @activity.defn(name="judge-window")
        async def judge_window(req: JudgeWindowRequest) -> MetricValue:
            self.asked.append(req)
            found = self.script(self.asked)
            return MetricValue(value=found.score, judgement=found)

        return Worker(
            self.client,
            task_queue=self.queue,
            workflows=[DeploymentWorkflow, BackgroundAnalysisWorkflow],
            activities=[*self.infra.activities(), judge_window],
        )


def always(verdict: Verdict) -> Script:
    return lambda asked: result(verdict)


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async for environment in time_skipping():
        yield environment


async def _state(run: Run, handle: WorkflowHandle[Any, DeploymentStatus], state: DeploymentState):
    return await settle(run, handle, lambda s: s.state is state, f"state {state}")


async def test_a_passing_judgement_continues_and_the_status_shows_it(
    env: WorkflowEnvironment,
) -> None:
    run = JudgedRun(env, always("pass"))
    async with run.worker():
        status = await (await run.start(deployment_input(canary()))).result()
    assert status.state is DeploymentState.SUCCEEDED
    assert run.infra.serving() == {"green": "v2"}
    judged = [m for m in status.measurements if m.metric == "judge"]
    assert [m.phase for m in judged] == ["successful", "successful"]
    assert [m.value for m in judged] == [100.0, 100.0]
    shown = judged[-1]
    assert shown.judgement is not None and shown.judgement.verdict == "pass"
    assert shown.judgement.metrics[0].test == "Mann-Whitney U"
    assert "pass at score 100" in shown.message and "the rollout continues" in shown.message
    assert "at step 2, measurement 2 of 2" in shown.message
    # The judge compared v2 with the version it replaces, in the same window (a canary).
    first, second = run.asked
    assert (first.version, first.baseline_version, first.baseline) == ("v2", "v1", "concurrent")
    assert first.where == "at step 2" and first.metric == "judge"
    # The window starts when the metric began measuring, and stays put as it grows.
    assert first.window_start == second.window_start >= first.deployment_start


async def test_a_warning_pauses_for_approval_and_a_promotion_goes_on(
    env: WorkflowEnvironment,
) -> None:
    run = JudgedRun(env, always("warning"))
    async with run.worker():
        handle = await run.start(deployment_input(canary()))
        status = await _state(run, handle, DeploymentState.PAUSED)
        assert status.paused_reason is not None
        assert "warning at score 80" in status.paused_reason
        assert "waits for approval" in status.paused_reason
        assert status.measurements[-1].phase == "inconclusive"
        await handle.execute_update("promote", ActionRequest(by="t"))
        assert (await handle.result()).state is DeploymentState.SUCCEEDED


async def test_a_warning_continues_when_the_metric_says_so(env: WorkflowEnvironment) -> None:
    run = JudgedRun(env, always("warning"))
    async with run.worker():
        handle = await run.start(deployment_input(canary(on_verdict={"warning": "continue"})))
        status = await handle.result()
    assert status.state is DeploymentState.SUCCEEDED
    assert DeploymentState.PAUSED not in {r.status.state for r in run.infra.records}
    assert "the rollout continues" in status.measurements[-1].message


async def test_a_failing_judgement_rolls_back(env: WorkflowEnvironment) -> None:
    run = JudgedRun(env, always("fail"))
    async with run.worker():
        status = await (await run.start(deployment_input(canary()))).result()
    assert status.state is DeploymentState.ROLLED_BACK
    assert "fail at score 0" in (status.reason or "")
    assert "100% above the baseline" in (status.reason or "")
    assert run.infra.serving() == {"blue": "v1"} and run.infra.versions() == {"blue": "v1"}
    assert len(run.asked) == 1  # failure_limit 0: the first failure decides


async def test_a_failure_waits_for_approval_when_the_metric_says_so(
    env: WorkflowEnvironment,
) -> None:
    run = JudgedRun(env, always("fail"))
    async with run.worker():
        handle = await run.start(deployment_input(canary(on_verdict={"fail": "approval"})))
        status = await _state(run, handle, DeploymentState.PAUSED)
        assert status.paused_reason and "fail at score 0" in status.paused_reason
        await handle.execute_update("abort", ActionRequest(by="t"))
        assert (await handle.result()).state is DeploymentState.ABORTED


def no_data_first(asked: list[JudgeWindowRequest]) -> JudgeResult:
    """The canary has no requests yet at the first two looks, then enough to pass."""
    if len(asked) <= 2:
        return result("fail", metric="nodata")
    return result("pass")


async def test_a_judgement_without_data_is_measured_again_then_judged(
    env: WorkflowEnvironment,
) -> None:
    run = JudgedRun(env, no_data_first)
    async with run.worker():
        status = await (await run.start(deployment_input(canary()))).result()
    assert status.state is DeploymentState.SUCCEEDED
    judged = [m for m in status.measurements if m.metric == "judge"]
    assert [m.phase for m in judged] == ["no_data", "no_data", "successful", "successful"]
    assert "no data yet for latency; judging again in 10s" in judged[0].message
    assert judged[0].judgement is not None and judged[0].judgement.metrics[0].verdict == "nodata"
    # Each look covers the window from the same start.
    assert len({r.window_start for r in run.asked}) == 1


async def test_no_data_for_longer_than_the_bound_is_judged_as_it_stands(
    env: WorkflowEnvironment,
) -> None:
    run = JudgedRun(env, lambda asked: result("fail", metric="nodata"))
    async with run.worker():
        status = await (await run.start(deployment_input(canary()))).result()
    # 2 measurements 10 s apart: a bound of 30 s, three retries, then the judgement decides.
    assert status.state is DeploymentState.ROLLED_BACK
    phases = [m.phase for m in status.measurements if m.metric == "judge"]
    assert phases == ["no_data", "no_data", "no_data", "failed"]
    assert "latency: no data" in (status.reason or "")


def rolling(replicas: int, **judge: Any) -> dict[str, Any]:
    analysis = judge_analysis(**judge)
    analysis["metrics"][0]["count"] = 1
    return {"type": "rolling", "max_surge": 1, "analysis": analysis}


async def test_a_rolling_update_is_judged_after_each_batch_against_before(
    env: WorkflowEnvironment,
) -> None:
    run = JudgedRun(env, always("pass"), replicas=3)
    async with run.worker():
        status = await (await run.start(deployment_input(rolling(3), replicas=3))).result()
    assert status.state is DeploymentState.SUCCEEDED
    assert [r.where for r in run.asked] == [
        "after batch 1 of 3",
        "after batch 2 of 3",
        "after batch 3 of 3",
    ]
    assert {r.baseline for r in run.asked} == {"before"}
    assert {r.baseline_version for r in run.asked} == {"v1"}
    assert len({r.deployment_start for r in run.asked}) == 1
    assert all(r.window_start >= r.deployment_start for r in run.asked)


async def test_a_rolling_update_judged_failing_mid_way_restores_the_old_set(
    env: WorkflowEnvironment,
) -> None:
    run = JudgedRun(env, lambda asked: result("pass" if len(asked) < 2 else "fail"), replicas=3)
    async with run.worker():
        status = await (await run.start(deployment_input(rolling(3), replicas=3))).result()
    assert status.state is DeploymentState.ROLLED_BACK
    assert len(run.asked) == 2 and "after batch 2 of 3" in (status.reason or "")
    assert run.infra.serving() == {"blue": "v1"}
    assert run.infra.sets["blue"].count == 3


async def test_a_background_judge_knows_its_deployment_and_fails_the_canary(
    env: WorkflowEnvironment,
) -> None:
    """The background analysis runs in a child workflow: the judge still compares with the
    version the deployment replaces, from the deployment's own start."""
    run = JudgedRun(env, lambda asked: result("pass" if len(asked) < 2 else "fail"))
    strategy = {
        "type": "canary",
        "steps": [{"set_weight": 20}, {"pause": {"duration": "10m"}}, {"set_weight": 100}],
        "analysis": {
            "metrics": [
                {
                    "name": "judge",
                    "interval": "30s",
                    "judge": {"metrics": [{"name": "latency", "kind": "latency"}]},
                }
            ]
        },
    }
    async with run.worker():
        status = await (await run.start(deployment_input(strategy))).result()
    assert status.state is DeploymentState.ROLLED_BACK
    assert "fail at score 0" in (status.reason or "")
    assert run.infra.serving() == {"blue": "v1"}
    first, second = run.asked
    assert (first.baseline_version, first.baseline, first.where) == (
        "v1",
        "concurrent",
        "in the background analysis",
    )
    assert first.window_start == second.window_start >= first.deployment_start
    assert first.deployment_start == second.deployment_start


def blue_green(**judge: Any) -> dict[str, Any]:
    analysis = judge_analysis(**judge)
    analysis["metrics"][0]["count"] = 1
    return {"type": "blue_green", "post_promotion_analysis": analysis}


async def test_a_blue_green_switch_is_judged_against_before_and_a_failure_switches_back(
    env: WorkflowEnvironment,
) -> None:
    """Blue-green has no concurrent control group after its switch: the judge compares the
    new version with the old one's window before the deployment, and a failure rolls back."""
    run = JudgedRun(env, always("fail"))
    async with run.worker():
        status = await (await run.start(deployment_input(blue_green()))).result()
    assert status.state is DeploymentState.ROLLED_BACK
    assert "the rollout rolls back" in status.reason
    assert run.infra.serving() == {"blue": "v1"}
    (asked,) = run.asked
    assert (asked.baseline, asked.baseline_version, asked.where) == (
        "before",
        "v1",
        "after promotion",
    )
