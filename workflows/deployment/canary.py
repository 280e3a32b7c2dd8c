"""Canary: steps of weights, pauses, analyses and approvals, with a background analysis beside
them (Argo Rollouts' `canary.go`)."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.models.analysis import BackgroundAnalysisInput, UnboundedAnalysisSpec
    from core.models.deployments import (
        AnalysisStep,
        ApprovalStep,
        CanaryStrategy,
        PauseReason,
        PauseStep,
        SetWeightStep,
    )
    from workflows.deployment.background import BackgroundAnalysisWorkflow
    from workflows.deployment.rollout import Rollout

# The patch that moved the background analysis into a child workflow that continues as new.
BACKGROUND_PATCH = "background-analysis-child"


async def run(r: Rollout, s: CanaryStrategy, stable: str, new: str) -> None:
    r.status.steps = len(s.steps)
    r.status.phase = "starting the canary"
    await r.start_new_set(new, r.inp.replicas_resolved)
    await r.route({stable: 100, new: 0})
    steps = asyncio.create_task(_canary_steps(r, s, stable, new))
    background = None
    if s.analysis is not None:
        background = asyncio.create_task(_background_analysis(r, s))
    await _first_of(steps, background)
    await r.finish_rollout(new, stable)


async def _canary_steps(r: Rollout, s: CanaryStrategy, stable: str, new: str) -> None:
    for i, step in enumerate(s.steps, 1):
        r.status.step = i
        await r.checkpoint()
        if r.gates.promote_full:
            r.status.phase = "promoted: skipping the remaining steps"
            return
        if isinstance(step, SetWeightStep):
            r.status.phase = f"step {i}: weight {step.set_weight}%"
            await r.route({stable: 100 - step.set_weight, new: step.set_weight})
        elif isinstance(step, PauseStep):
            if step.pause.duration is None:
                await r.wait_for_promotion(f"step {i}: paused until promoted", PauseReason.STEP)
            else:
                await r.timed_pause(step.pause.duration)
        elif isinstance(step, AnalysisStep):
            await r.analyse(step.analysis, f"at step {i}")
        elif isinstance(step, ApprovalStep):
            a = step.approval
            await r.wait_for_approval(i, [x.value for x in a.roles], a.timeout, a.on_timeout)


async def _background_analysis(r: Rollout, s: CanaryStrategy) -> None:
    assert s.analysis is not None
    await workflow.wait_condition(lambda: r.status.step > s.analysis.starting_step)  # type: ignore[union-attr]
    if workflow.patched(BACKGROUND_PATCH):
        await _background_child(r, s)
        return
    # Histories recorded before the patch ran it inline; without a count a background
    # metric measures until the rollout ends (Argo).
    spec = s.analysis.model_copy(
        update={
            "metrics": [
                m if m.count or not m.interval else m.model_copy(update={"count": 10_000})
                for m in s.analysis.metrics
            ]
        }
    )
    await r.analyse(spec, "in the background analysis")


async def _background_child(r: Rollout, s: CanaryStrategy) -> None:
    """The background analysis as a child workflow: its history, not ours, holds the
    measurements, and it continues as new however long the rollout lasts."""
    assert s.analysis is not None
    endless = [m.name for m in s.analysis.metrics if m.count is None and m.interval]
    inp = BackgroundAnalysisInput(
        spec=UnboundedAnalysisSpec(metrics=s.analysis.metrics),
        component=r.inp.component,
        environment=r.inp.environment,
        version=r.inp.version,
        where="in the background analysis",
        until_cancelled=endless,
        # Only an analysis with a judge metric carries it (older inputs never had one).
        judging=r.judge_context() if any(m.judge for m in s.analysis.metrics) else None,
    )
    info = workflow.info()
    result = await workflow.execute_child_workflow(
        BackgroundAnalysisWorkflow.run,
        inp,
        id=f"{info.workflow_id}:background:{r.inp.deployment_id}",
        static_summary=f"background analysis of {r.inp.version}",
    )
    for metric in result.metrics:
        for m in metric.measurements:
            r.record_measurement(m)
    await r.judge_analysis(result)


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
