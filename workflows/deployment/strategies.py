"""The three strategies, as sequences of the workflow's steps (each registers its own undo)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.models.analysis import BackgroundAnalysisInput, UnboundedAnalysisSpec
    from core.models.deployments import (
        AnalysisStep,
        ApprovalStep,
        BlueGreenStrategy,
        CanaryStrategy,
        PauseStep,
        RollingStrategy,
        SetWeightStep,
    )
    from workflows.deployment.background import BackgroundAnalysisWorkflow
    from workflows.deployment.saga import Saga

# The patch that moved the background analysis into a child workflow that continues as new.
BACKGROUND_PATCH = "background-analysis-child"

if TYPE_CHECKING:
    from workflows.deployment.workflow import DeploymentWorkflow


async def run_strategy(wf: DeploymentWorkflow, saga: Saga, stable: str | None, new: str) -> None:
    replicas = wf.inp.replicas_resolved
    if stable is None:
        # The first deployment has nothing to compare with and no traffic to protect: like
        # Argo Rollouts, it skips the steps.
        wf.status.phase = "first deployment: starting the instances"
        await wf.start_new_set(saga, new, replicas)
        await wf.finish_rollout(saga, new, None)
        return
    strategy = wf.inp.strategy
    if isinstance(strategy, CanaryStrategy):
        await canary(wf, saga, strategy, stable, new)
    elif isinstance(strategy, BlueGreenStrategy):
        await blue_green(wf, saga, strategy, stable, new)
    else:
        await rolling(wf, saga, strategy, stable, new)


# ----------------------------------------------------------------------------- canary


async def canary(
    wf: DeploymentWorkflow, saga: Saga, s: CanaryStrategy, stable: str, new: str
) -> None:
    wf.status.steps = len(s.steps)
    wf.status.phase = "starting the canary"
    await wf.start_new_set(saga, new, wf.inp.replicas_resolved)
    await wf.route({stable: 100, new: 0})
    steps = asyncio.create_task(_canary_steps(wf, s, stable, new))
    background = None
    if s.analysis is not None:
        background = asyncio.create_task(_background_analysis(wf, s))
    await _first_of(steps, background)
    await wf.finish_rollout(saga, new, stable)


async def _canary_steps(wf: DeploymentWorkflow, s: CanaryStrategy, stable: str, new: str) -> None:
    for i, step in enumerate(s.steps, 1):
        wf.status.step = i
        await wf.checkpoint()
        if wf.promote_full:
            wf.status.phase = "promoted: skipping the remaining steps"
            return
        if isinstance(step, SetWeightStep):
            wf.status.phase = f"step {i}: weight {step.set_weight}%"
            await wf.route({stable: 100 - step.set_weight, new: step.set_weight})
        elif isinstance(step, PauseStep):
            if step.pause.duration is None:
                await wf.wait_for_promotion(f"step {i}: paused until promoted")
            else:
                await wf.timed_pause(step.pause.duration)
        elif isinstance(step, AnalysisStep):
            await wf.analyse(step.analysis, f"at step {i}")
        elif isinstance(step, ApprovalStep):
            a = step.approval
            await wf.wait_for_approval(i, [r.value for r in a.roles], a.timeout, a.on_timeout)


async def _background_analysis(wf: DeploymentWorkflow, s: CanaryStrategy) -> None:
    assert s.analysis is not None
    await workflow.wait_condition(lambda: wf.status.step > s.analysis.starting_step)  # type: ignore[union-attr]
    if workflow.patched(BACKGROUND_PATCH):
        await _background_child(wf, s)
        return
    # Without a count, a background metric measures until the rollout ends (Argo).
    spec = s.analysis.model_copy(
        update={
            "metrics": [
                m if m.count or not m.interval else m.model_copy(update={"count": 10_000})
                for m in s.analysis.metrics
            ]
        }
    )
    await wf.analyse(spec, "in the background analysis")


async def _background_child(wf: DeploymentWorkflow, s: CanaryStrategy) -> None:
    """The background analysis as a child workflow: its history, not ours, holds the
    measurements, and it continues as new however long the rollout lasts."""
    assert s.analysis is not None
    # Without a count, a background metric measures until the rollout ends (Argo).
    endless = [m.name for m in s.analysis.metrics if m.count is None and m.interval]
    inp = BackgroundAnalysisInput(
        spec=UnboundedAnalysisSpec(metrics=s.analysis.metrics),
        component=wf.inp.component,
        environment=wf.inp.environment,
        version=wf.inp.version,
        where="in the background analysis",
        until_cancelled=endless,
    )
    info = workflow.info()
    result = await workflow.execute_child_workflow(
        BackgroundAnalysisWorkflow.run,
        inp,
        id=f"{info.workflow_id}:background:{wf.inp.deployment_id}",
        static_summary=f"background analysis of {wf.inp.version}",
    )
    for metric in result.metrics:
        for m in metric.measurements:
            wf.record_measurement(m)
    await wf.judge_analysis(result)


async def _first_of(steps: asyncio.Task[None], background: asyncio.Task[None] | None) -> None:
    """The steps decide, unless the background analysis fails first."""
    if background is None:
        await steps
        return
    try:
        await workflow.wait([steps, background], return_when=asyncio.FIRST_COMPLETED)
        if steps.done():
            steps.result()
        else:
            background.result()  # it ended first: raises if it failed
            await steps
    except GeneratorExit:  # evicted from the worker's cache: nothing may be awaited now
        raise
    except BaseException:
        await _stop(steps, background)
        raise
    await _stop(steps, background)


async def _stop(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# ----------------------------------------------------------------------------- blue-green


async def blue_green(
    wf: DeploymentWorkflow, saga: Saga, s: BlueGreenStrategy, stable: str, new: str
) -> None:
    replicas = wf.inp.replicas_resolved
    preview = min(s.preview_replica_count or replicas, replicas)
    wf.status.steps, wf.status.step = 4, 1
    wf.status.phase = "starting the preview set"
    await wf.start_new_set(saga, new, preview)
    await wf.route({stable: 100, new: 0})
    wf.status.step = 2
    if s.pre_promotion_analysis is not None:
        await wf.analyse(s.pre_promotion_analysis, "before promotion")
    await wf.checkpoint()
    if not s.auto_promotion_enabled:
        await wf.wait_for_promotion("waiting for promotion")
    elif s.auto_promotion_seconds:
        await wf.timed_pause(s.auto_promotion_seconds)
    wf.status.step = 3
    if preview < replicas:
        wf.status.phase = "scaling the preview set up"
        await wf.start_new_set(saga, new, replicas)
    wf.status.phase = "switching all traffic"
    await wf.route({stable: 0, new: 100})  # one atomic switch
    wf.status.step = 4
    if s.post_promotion_analysis is not None:
        await wf.analyse(s.post_promotion_analysis, "after promotion")
    if s.scale_down_delay_seconds:
        wf.status.phase = f"keeping the old set {s.scale_down_delay_seconds:g}s"
        await wf.delay(s.scale_down_delay_seconds, "scale-down delay")
    await wf.finish_rollout(saga, new, stable)


# ----------------------------------------------------------------------------- rolling


def _weights(stable: str, new: str, stable_count: int, new_count: int) -> dict[str, int]:
    if new_count == 0:
        return {stable: 100, new: 0}
    if stable_count == 0:
        return {stable: 0, new: 100}
    share = round(100 * new_count / (new_count + stable_count))
    return {stable: 100 - share, new: share}


async def rolling(
    wf: DeploymentWorkflow, saga: Saga, s: RollingStrategy, stable: str, new: str
) -> None:
    replicas = wf.inp.replicas_resolved
    old_version = wf.status.previous_version or ""
    batch = s.batch_size or max(s.max_surge, s.max_unavailable)
    surge_first = s.batch_size is not None or s.max_surge > 0
    new_count, old_count = 0, replicas
    wf.status.steps = -(-replicas // batch)
    while new_count < replicas:
        wf.status.step += 1
        await wf.checkpoint()
        size = replicas - new_count if wf.promote_full else min(batch, replicas - new_count)
        wf.status.phase = f"batch {wf.status.step} of {wf.status.steps}"
        if surge_first:
            new_count += size
            await wf.start_new_set(saga, new, new_count)
            old_count = replicas - new_count
            await wf.route(_weights(stable, new, old_count, new_count))
            await wf.scale_stable(saga, stable, old_version, old_count, replicas)
        else:
            old_count = max(0, old_count - size)
            await wf.route(_weights(stable, new, old_count, new_count))
            await wf.scale_stable(saga, stable, old_version, old_count, replicas)
            new_count += size
            await wf.start_new_set(saga, new, new_count)
            await wf.route(_weights(stable, new, old_count, new_count))
        if s.pause_between_batches and new_count < replicas:
            await wf.timed_pause(s.pause_between_batches)
    await wf.finish_rollout(saga, new, stable)
